"""Session-state keys that more than one page reads or writes: one name for each, declared here.

A key that only one page uses stays in that page. Add keys here; never rename one another page uses.
"""

FLASH = "flash"  # a one-line message that the page shows once at its top after a rerun
SHOW_RUN = "show_run"  # the name of the run another page asked Checkpoints or Predict to show
TRAIN_RUN = "train_run"  # the run the Train page watches (set there, and by Resume on Checkpoints)
CHECKPOINTS_TAB = "checkpoints_tab"  # the Checkpoints page's open tab (Train links to its evaluation)
EVALUATION_TAB = "Evaluation"  # that tab's label, the value CHECKPOINTS_TAB takes to open it
DATASET = "dataset"  # the chosen dataset folder (str): set by Data, trained on by Train
AUGMENT = "augment"  # the Data page's augmentation (an AugmentConfig as a dict), offered to Train
ADVISED = "advised"  # the advisor's recommendation handed to Train: dataset, strategy, preset
PRESET_DEFAULT = "preset_default"  # the preset Train starts at (ADVISOR once advice is taken)
ADVISOR = "advisor"  # the name Train gives the preset the Data page's strategy advisor recommended
