"""Saves or restores a training run's compact state (dmfn_tf/training/compact_state.py).

Usage:

```bash
python scripts/campaign_state.py export ~/runs/photo_campaign campaign/photo_campaign_state.npz
python scripts/campaign_state.py import campaign/photo_campaign_state.npz ~/runs/photo_campaign
dmfn train --config ~/runs/photo_campaign/config.yaml --out ~/runs/photo_campaign --resume
```
"""

from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("export", "import"))
    parser.add_argument("source", help="export: the run folder; import: the state file")
    parser.add_argument("destination", help="export: the state file; import: the run folder")
    args = parser.parse_args(argv)
    from dmfn_tf.errors import UserError
    from dmfn_tf.training.compact_state import export_compact_state, import_compact_state

    try:
        if args.action == "export":
            summary = export_compact_state(args.source, args.destination)
            print(f"{args.destination}: step {summary['step']}, {summary['bytes'] / 1e6:.1f} MB")
        else:
            step = import_compact_state(args.source, args.destination)
            print(f"{args.destination}: ready to resume from step {step}")
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
