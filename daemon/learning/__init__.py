"""Learning on the user's machine, without retraining the CNN: model packs for a new generator
(`aimusicd learn`) and thresholds set on the user's own catalogue (`aimusicd calibrate`)."""
