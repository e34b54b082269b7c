#!/bin/sh
# The container's main process. Runs the agent in the node's mount
# namespace, passes SIGTERM on to it, and when the preStop hook asked for it
# (helm uninstall) unpins once the agent has exited: the agent holds the pin
# directory's lock until it exits, and a preStop process would be killed
# with the container as soon as the agent is gone.
#   EGB_BIN      the agent, as the node sees it
#   EGB_PIN_DIR  its --pin-dir
#   EGB_RUN_DIR  this pod's scratch directory (the preStop hook's request)
#   EGB_NSENTER  the command that enters the node's mount namespace
set -u
run=${EGB_RUN_DIR:?}
rm -f "$run/unpin"
# shellcheck disable=SC2086
${EGB_NSENTER:-} "${EGB_BIN:?}" run "$@" &
agent=$!
echo "$agent" >"$run/agent.pid"
trap 'kill -TERM "$agent" 2>/dev/null' TERM INT
wait "$agent"
status=$?
# a trapped signal ends the first wait early; the second one reaps the agent
if kill -0 "$agent" 2>/dev/null; then
    wait "$agent"
    status=$?
fi
if [ -e "$run/unpin" ]; then
    echo "eghostbuster pod: helm uninstall: unpinning ${EGB_PIN_DIR:?}"
    # shellcheck disable=SC2086
    ${EGB_NSENTER:-} "$EGB_BIN" unpin --pin-dir "$EGB_PIN_DIR" || status=1
else
    echo "eghostbuster pod: stopped (status $status); the pins in ${EGB_PIN_DIR:-} stay for the next pod"
fi
exit "$status"
