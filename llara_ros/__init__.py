"""llara_ros: thin rclpy nodes around llara_core (message conversion, parameters, topics)."""
