"""The Azure Batch + Blob backend (``backend: azure``); imported only when a command needs it."""
