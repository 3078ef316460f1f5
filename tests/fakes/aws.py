"""moto's AWS server on 127.0.0.1 (an ephemeral port), for the CLI subprocess to reach through
``AWS_ENDPOINT_URL`` with the real boto3, plus what a test does in the provider's place.

moto 5.2.5 keeps a Bedrock customization job ``InProgress`` until the test moves it
(``finish_job``); its backends live in this process, so the test reads and changes them directly.
"""

from __future__ import annotations

import urllib.request

ACCOUNT = "123456789012"
REGION = "us-west-2"
BUCKET = "lc-training"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/bedrock-customization"


class MotoAws:
    def __init__(self):
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        self.env = {"AWS_ENDPOINT_URL": self.url, "AWS_ACCESS_KEY_ID": "testing-key-id",
                    "AWS_SECRET_ACCESS_KEY": "testing-secret-access-key", "AWS_REGION": REGION}

    def close(self) -> None:
        # moto's backends are process-wide: leave nothing behind for the next test
        urllib.request.urlopen(urllib.request.Request(f"{self.url}/moto-api/reset", method="POST"))
        self._server.stop()

    def __enter__(self) -> MotoAws:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def client(self, service: str):
        import boto3

        return boto3.client(service, region_name=REGION, endpoint_url=self.url,
                            aws_access_key_id="testing-key-id", aws_secret_access_key="testing-secret-access-key")

    @property
    def bedrock(self):
        from moto.bedrock.models import bedrock_backends

        return bedrock_backends[ACCOUNT][REGION]

    @property
    def jobs(self) -> dict:
        return self.bedrock.model_customization_jobs

    def finish_job(self, name: str, status: str = "Completed", loss: float = 0.25, failure: str = "") -> None:
        """What Bedrock does when a job ends (moto leaves every job InProgress)."""
        job = self.jobs[name]
        job.status = status
        job.training_metrics = {"trainingLoss": loss}
        job.failure_message = failure

    def objects(self) -> list[str]:
        listing = self.client("s3").list_objects_v2(Bucket=BUCKET)
        return sorted(o["Key"] for o in listing.get("Contents", []))
