"""Session-state keys that more than one page reads or writes, declared once.

A page's own keys (its widgets', its caches') stay in that page or its ui/ module.
"""

DATASET = "dataset"  # the chosen dataset folder (str): set by Data, trained on by Train
AUGMENT = "augment"  # the Data page's augmentation (an AugmentConfig as a dict), offered to Train
ADVISED = "advised"  # the advisor's recommendation handed to Train: dataset, strategy, preset
PRESET_DEFAULT = "preset_default"  # the preset Train starts at ("advisor" once advice is taken)
FLASH = "flash"  # a one-line success shown once, after the rerun that follows an action
