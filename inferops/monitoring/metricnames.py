"""Every metric and job name the rules and dashboards use, in one place.

The inferops names are those ``inferops/server/metrics.py`` registers (a test
checks them against a live registry); the LLM names follow vLLM's, under
``inferops_`` (the LLM serving issue exports them). node_exporter and
dcgm-exporter names are theirs, unchanged.
"""

from __future__ import annotations

# --- the reference server (prometheus_client adds _total/_bucket/_sum/_count) ---
REQUESTS = "inferops_requests_total"
REQUEST_DURATION = "inferops_request_duration_seconds"
QUEUE_WAIT = "inferops_queue_wait_seconds"
BATCH_SIZE = "inferops_batch_size"
INFERENCE_DURATION = "inferops_inference_duration_seconds"
IN_FLIGHT = "inferops_requests_in_flight"
QUEUE_DEPTH = "inferops_queue_depth"
MODEL_LOADED = "inferops_model_loaded"

# --- LLM serving (vLLM's names under inferops_) ---
TTFT = "inferops_time_to_first_token_seconds"
TPOT = "inferops_time_per_output_token_seconds"

# --- node_exporter ---
NODE_CPU = "node_cpu_seconds_total"
NODE_MEM_AVAILABLE = "node_memory_MemAvailable_bytes"
NODE_MEM_TOTAL = "node_memory_MemTotal_bytes"
NODE_NET_RX = "node_network_receive_bytes_total"
NODE_NET_TX = "node_network_transmit_bytes_total"

# --- dcgm-exporter ---
GPU_UTIL = "DCGM_FI_DEV_GPU_UTIL"
GPU_FB_USED = "DCGM_FI_DEV_FB_USED"
GPU_FB_FREE = "DCGM_FI_DEV_FB_FREE"
GPU_TEMP = "DCGM_FI_DEV_GPU_TEMP"
GPU_POWER = "DCGM_FI_DEV_POWER_USAGE"
GPU_XID = "DCGM_FI_DEV_XID_ERRORS"
GPU_THROTTLE = "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS"

#: Every raw metric a rule or dashboard may reference (histograms by base name).
RAW_METRICS = frozenset(
    {
        REQUESTS,
        REQUEST_DURATION + "_bucket",
        QUEUE_WAIT + "_bucket",
        BATCH_SIZE + "_sum",
        BATCH_SIZE + "_count",
        INFERENCE_DURATION + "_bucket",
        IN_FLIGHT,
        QUEUE_DEPTH,
        MODEL_LOADED,
        TTFT + "_bucket",
        TPOT + "_bucket",
        NODE_CPU,
        NODE_MEM_AVAILABLE,
        NODE_MEM_TOTAL,
        NODE_NET_RX,
        NODE_NET_TX,
        GPU_UTIL,
        GPU_FB_USED,
        GPU_FB_FREE,
        GPU_TEMP,
        GPU_POWER,
        GPU_XID,
        GPU_THROTTLE,
        "up",
    }
)

# --- scrape jobs ---
JOB_SERVER = "inferops"
JOB_TRITON = "triton"
JOB_NODE = "node"
JOB_DCGM = "dcgm"
JOB_PROMETHEUS = "prometheus"
JOB_ALERTMANAGER = "alertmanager"

#: Triton serves Prometheus metrics on this port (its --metrics-port default).
TRITON_METRICS_PORT = 8002
