#!/usr/bin/env bash
# Regenerate src/voxloop/transports/serializers/frames_pb2.py (and its .pyi type stub) from
# frames.proto. Run it after editing the .proto, and commit the result: the package ships the
# generated code so that users need only the `protobuf` runtime, never protoc.
#
# Why grpcio-tools 1.63.2 (protoc 26.1, "Protobuf Python Version 5.26.1"):
# - gencode from protoc >= 27 calls runtime_version.ValidateProtobufRuntimeVersion, which makes
#   some protobuf 6.x runtimes warn (or older majors fail) on a major-version mismatch;
# - gencode from 26.1 carries no such check and runs on every runtime from 5.26.1 up (5.x, 6.x, 7.x
#   are tested), so pyproject.toml can say protobuf>=5.26.1 and not fight other packages' pins.
# If you move to a newer generator, raise the protobuf lower bound in pyproject.toml to match the
# "Protobuf Python Version" line of the new frames_pb2.py.
#
# Needs only PyPI: protoc comes inside the grpcio-tools wheel, installed in a throwaway venv.
set -euo pipefail

GRPCIO_TOOLS_VERSION="1.63.2"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/src/voxloop/transports/serializers"
PYTHON="${PYTHON:-python3}"

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

"$PYTHON" -m venv "$TMP/venv"
"$TMP/venv/bin/pip" install --quiet --disable-pip-version-check "grpcio-tools==$GRPCIO_TOOLS_VERSION"

# The proto path is the serializers folder, so the file registers in protobuf's descriptor pool as
# plain "frames.proto", exactly like the peer's copy: identical descriptors can then be loaded
# side by side in one process (for example a benchmark that imports both).
"$TMP/venv/bin/python" -m grpc_tools.protoc \
  --proto_path="$OUT" \
  --python_out="$OUT" \
  --pyi_out="$OUT" \
  "$OUT/frames.proto"

# Generated code is not ours to lint, format or type-check. (mypy reads the .pyi, not the .py;
# without the types-protobuf stubs it would flag the untyped google.protobuf import there.)
for f in "$OUT/frames_pb2.py" "$OUT/frames_pb2.pyi"; do
  { printf '# ruff: noqa\n# fmt: off\n# mypy: ignore-errors\n'; cat "$f"; } > "$TMP/header"
  mv "$TMP/header" "$f"
done

echo "regenerated $OUT/frames_pb2.py and frames_pb2.pyi"
