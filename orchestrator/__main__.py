"""``python -m orchestrator`` runs the CLI."""
from orchestrator.cli import entry

if __name__ == "__main__":
    entry()
