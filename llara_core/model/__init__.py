"""The vision-language model: the policy seam (:mod:`~.policy`: ``Policy``, ``PolicyOutput``, ``load_policy``),
the local runtime on Hugging Face ``transformers`` (:mod:`~.runtime`, :mod:`~.decoding`), the model folder and
every sidecar file in it (:mod:`~.folder`), training (:mod:`~.train`, :mod:`~.data`, :mod:`~.pretrain_vision`),
and making models offline (:mod:`~.tiny`, :mod:`~.import_llava`). torch/transformers/peft are imported only
where they are used, so the seam imports without them."""
