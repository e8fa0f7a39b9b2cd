"""Emulated AWS (moto) for the channels suite: the ledger and profiles tables from `cdp.topology`, the data bucket,
and a verified SES sender."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from cdp import topology
from cdp_local.runtime.core import create_table

SENDER = "news@bakery.example"


@dataclass
class Aws:
    dynamodb: Any
    s3: Any
    sesv2: Any
    sender: str = SENDER


@pytest.fixture
def aws() -> Iterator[Aws]:
    with mock_aws():
        db = boto3.client("dynamodb")
        for spec in topology.TABLES:
            create_table(db, spec)
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=topology.DATA_BUCKET_LOCAL_NAME)
        ses = boto3.client("sesv2")
        ses.create_email_identity(EmailIdentity=SENDER)
        yield Aws(dynamodb=db, s3=s3, sesv2=ses)
