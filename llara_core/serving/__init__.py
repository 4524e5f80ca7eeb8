"""The policy over HTTP: the OpenAI chat-completions client backend (:mod:`~.client`, ``backend: openai``) and
``llara serve`` (:mod:`~.server`), an OpenAI-compatible server for any model the local runtime loads. Both speak
the request shape vLLM accepts for vision models, so either side can be replaced by vLLM."""
