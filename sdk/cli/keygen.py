"""``sdk keygen NAME``: an Ed25519 key pair for signing model_dirs.

Writes ``NAME.key`` (private, PEM, mode 0600: keep it secret, give it to
``sdk export --sign``) and ``NAME.pub`` (public, PEM: give it to
``Detector(..., trusted_keys=[...])`` or ``sdk serve --trusted-keys``).
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("keygen", help="create an Ed25519 key pair for signing model_dirs",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", metavar="NAME", help="path prefix: writes NAME.key and NAME.pub (never overwritten)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sdk.signing import generate_keypair

    private, public = f"{args.name}.key", f"{args.name}.pub"
    generate_keypair(private, public)
    print(f"wrote {private} (private: keep it secret; sdk export --sign {private}) and {public} "
          f"(public: sdk serve --trusted-keys {public})")
    return 0
