"""The embedded local AWS: moto's control plane plus our real SageMaker inference runtime.

One port serves s3, sagemaker, sagemaker-runtime, cloudwatch, sqs, events (any service moto
knows), so ``AWS_ENDPOINT_URL=http://127.0.0.1:4566`` is all a boto3 client needs. Start it with
``python -m local_sagemaker --host 127.0.0.1 --port 4566`` (loopback only; ``--container-bind``
is for docker-compose alone) or, from Python, ``local_sagemaker.stack.EmbeddedStack``.

Modules, one concept each: ``server`` (WSGI front + flusher), ``runtime`` (InvokeEndpoint hot
path), ``routing`` (variants and current weights from moto), ``loader``/``artifacts`` (model.tar.gz
from moto's S3), ``payload`` (CSV/JSON codec), ``metrics`` (CloudWatch), ``capture`` (Data
Capture), ``faults`` (fault injection), ``errors`` (SageMaker error shapes), ``control_plane``
(moto fixes, and SageMaker's states in time), ``profile`` (``instant`` or ``aws`` timing:
``LOCAL_SAGEMAKER_PROFILE=aws`` or ``--profile aws``), ``throttle`` (control-plane rate limits),
``shadow`` (shadow variants: config rules, sampling share, the pool replaying requests on them),
``stack`` (subprocess launcher).

Fault injection, set in a SageMaker Model's ``PrimaryContainer.Environment``:

* ``LOCAL_SAGEMAKER_LATENCY_MS``: extra milliseconds per model call (shows in ModelLatency).
* ``LOCAL_SAGEMAKER_ERROR_RATE``: share in [0, 1] of requests failing as a failing model's do:
  a 424 ModelError carrying the container's 500 (counted in Invocation5XXErrors).
* ``LOCAL_SAGEMAKER_UPDATE_FAILS``: ``1``: an UpdateEndpoint bringing this model rolls back by
  itself (InService on the previous config, with a FailureReason); ``rollback_failed``: it ends
  in UpdateRollbackFailed. A CreateEndpoint bringing it ends Failed.

Process tuning: ``LOCAL_SAGEMAKER_SWITCH_INTERVAL_S`` (GIL switch interval, default 0.005).
"""
