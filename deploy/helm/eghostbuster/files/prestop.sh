#!/bin/sh
# preStop: is this stop an uninstall? Only Helm's pre-delete hook annotates
# the pods eghostbuster/unpin-on-stop="true" (a rolling update, a drain or an
# eviction does not), and the kubelet writes the pod's annotations to the
# downward-API file read here. For an uninstall, ask the entrypoint to unpin
# once the agent has stopped; otherwise the pins stay for the next pod.
#   EGB_PODINFO  the downward-API directory (its "annotations" file)
#   EGB_RUN_DIR  this pod's scratch directory, shared with the entrypoint
if grep -qx 'eghostbuster/unpin-on-stop="true"' "${EGB_PODINFO:?}/annotations" 2>/dev/null; then
    : >"${EGB_RUN_DIR:?}/unpin"
fi
exit 0
