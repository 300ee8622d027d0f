"""Fleet management at central: signed station configs pushed over MQTT (config_push)."""
