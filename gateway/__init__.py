"""bsm-gateway: the mail gateway of a marketplace's buyer-seller messaging."""

__version__ = "0.1.0"
