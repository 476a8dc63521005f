"""PurchaseShare: forwarded order emails -> structured purchases their owners choose to share."""

__version__ = "0.1.0"
