"""qmra's default weights: ``qmra-default.safetensors`` (fp16) and its card ``qmra-default.json``
(training data, steps, commands, held-out sequences and their scores). See docs/model-card.md."""
