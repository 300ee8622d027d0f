"""Central's alarms: rules in `[alarms]` (config.py), what they measure and their hysteresis
(rules.py), one evaluation pass and the receiver's thread (evaluator.py), e-mail and webhook
notifications (notify.py). The alarms themselves live in the store (central/store/operations.py).
Nothing is imported here: central/config.py imports the config module alone."""
