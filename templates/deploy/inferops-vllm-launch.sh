#!/bin/sh
# Managed by inferops (pyinfra). Starts vLLM with the node's bearer token taken from the
# systemd credential into VLLM_API_KEY (vLLM reads it like --api-key), so the token is
# never in argv, where any local user could read it from /proc/<pid>/cmdline.
set -eu
if [ -n "${CREDENTIALS_DIRECTORY:-}" ] && [ -r "$CREDENTIALS_DIRECTORY/token" ]; then
    VLLM_API_KEY=$(cat "$CREDENTIALS_DIRECTORY/token")
    export VLLM_API_KEY
fi
exec "$@"
