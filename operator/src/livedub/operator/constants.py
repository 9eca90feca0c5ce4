"""Names shared by the CRDs, the builders and the handlers.

Kept in one leaf module so the CRD YAML in ``crds/`` and the Python code agree on one spelling;
``tests/unit/operator/test_crds.py`` checks these against the YAML.
"""

from typing import Final

from livedub.contract.env import DRAINING_ANNOTATION, SHED_STREAMS_ANNOTATION

GROUP: Final = "dubbing.livedub.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
POOL_PLURAL: Final = "dubbingpools"
POOL_KIND: Final = "DubbingPool"
VOICE_PLURAL: Final = "voiceprofiles"
VOICE_KIND: Final = "VoiceProfile"

# Labels on every child; the app.kubernetes.io ones follow the recommended-labels convention so
# dashboards and `kubectl get -l` work without knowing our CRDs.
LABEL_NAME: Final = "app.kubernetes.io/name"
LABEL_INSTANCE: Final = "app.kubernetes.io/instance"
LABEL_COMPONENT: Final = "app.kubernetes.io/component"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
LABEL_POOL: Final = f"{GROUP}/pool"
APP_NAME: Final = "livedub-runtime"
MANAGER: Final = "livedub-operator"

# Pod template annotation carrying a hash of the voices file: a changed VoiceProfile rolls the pods,
# because the runtime reads VOICES_FILE once at start-up.
ANNOTATION_VOICES_HASH: Final = f"{GROUP}/voices-hash"

# Prometheus scrape annotations: the autoscaler reads the same ones Prometheus does, so one place
# says where a pod's /metrics lives (and tests can point a pod at a loopback server).
ANNOTATION_SCRAPE: Final = "prometheus.io/scrape"
ANNOTATION_SCRAPE_PORT: Final = "prometheus.io/port"
ANNOTATION_SCRAPE_PATH: Final = "prometheus.io/path"
ANNOTATION_SCRAPE_SCHEME: Final = "prometheus.io/scheme"

# Where things land inside the runtime pod.
VOICES_DIR: Final = "/etc/livedub/voices"
VOICES_FILE: Final = f"{VOICES_DIR}/voices.json"
REFERENCE_AUDIO_DIR: Final = "/var/lib/livedub/reference-audio"
AUTH_TOKENS_FILE: Final = "/etc/livedub/auth/tokens"
MODEL_CACHE_DIR: Final = "/root/.cache/huggingface"

# The runtime image's user (deploy/Dockerfile.runtime), by number: with runAsNonRoot the kubelet
# refuses an image whose USER is a name, since it cannot prove a name is not root. The reference-audio
# init container runs as the same uid, so the runtime owns the files it reads.
RUNTIME_UID: Final = 10001

# Written by the autoscaler on a pool's pods before a scale-down: the ReplicaSet removes the pod with
# the lowest cost first, so the least-loaded pod goes (its streams are the ones that must move).
ANNOTATION_DELETION_COST: Final = "controller.kubernetes.io/pod-deletion-cost"
# Set on a pool by the activation endpoint (a connection attempt or a pending stream): a pool with
# minReplicas 0 at zero replicas scales to one pod.
ANNOTATION_ACTIVATION: Final = f"{GROUP}/activation-requested"
# The operator's drain mark on a pod chosen for a gentle scale-down: the runtime (through its
# downward-API annotations file) stops admitting streams and asks its live ones to move.
ANNOTATION_DRAINING: Final = DRAINING_ANNOTATION
#: On an overloaded pod: shed that many live streams to pods with room (scaling/rebalance.py).
ANNOTATION_SHED: Final = SHED_STREAMS_ANNOTATION
