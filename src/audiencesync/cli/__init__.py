"""The command line: ``audiencesync NOUN VERB``."""
