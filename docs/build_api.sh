#!/usr/bin/env bash
# The API reference, HTML generated from the docstrings with pdoc (Google style): docs/api/index.html.
# Usage: docs/build_api.sh [output directory, default docs/api (git-ignored)]
# The top-level page documents dwsjax.__all__; dwsjax.augment, dwsjax.models and dwsjax.data get a page each.
# Any other module's helpers: python -m pdoc dwsjax.<module> --docformat google (a local server).
# pdoc warns "Error parsing type annotation ForwardRef(...)" for the NamedTuples' __init__ (a known pdoc bug with
# postponed annotations in NamedTuples, mitmproxy/pdoc#765); their fields are documented right.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-docs/api}"
rm -rf "$out"
# python -m (not the pdoc script) so that the dwsjax of this checkout is the one documented
python -m pdoc dwsjax dwsjax.augment dwsjax.models dwsjax.data --docformat google -o "$out"
echo "API reference: $out/index.html"
