"""Vision pipelines on onnxruntime. Nothing here knows about MQTT."""
