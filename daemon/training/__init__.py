"""Building the shipped models (`aimusicd train`): corpora, AI-like fakes and vocoders, examples,
the CNN's training, the fits above the engines, and the model card. Nothing at run time imports
this package; what run time and training share lives in daemon.evaluation."""
