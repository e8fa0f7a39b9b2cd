"""What makes the AWS senders' delivery events come back: the SES v2 configuration set every e-mail is sent with,
publishing its events to the account's default event bus, and the End User Messaging SMS configuration set every
text is sent with (SMS status events reach the default bus on their own). The rule `cdp.topology.DELIVERY_EVENTS_RULE`
(`Messaging`) forwards both to the delivery events function, which ingests them as receipts."""

from __future__ import annotations

from aws_cdk import aws_events as events
from aws_cdk import aws_ses as ses
from aws_cdk import aws_smsvoice as smsvoice
from constructs import Construct

SES_EVENTS = [
    ses.EmailSendingEvent.DELIVERY,
    ses.EmailSendingEvent.BOUNCE,
    ses.EmailSendingEvent.COMPLAINT,
    ses.EmailSendingEvent.REJECT,
    ses.EmailSendingEvent.OPEN,
    ses.EmailSendingEvent.CLICK,
    ses.EmailSendingEvent.SUBSCRIPTION,
]


class DeliveryEvents(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        default_bus = events.EventBus.from_event_bus_name(self, "DefaultBus", "default")
        self.email = ses.ConfigurationSet(
            self,
            "EmailConfigurationSet",
            reputation_metrics=True,  # bounce and complaint rates per configuration set
            sending_enabled=True,
        )
        self.email.add_event_destination(
            "ToEventBridge", destination=ses.EventDestination.event_bus(default_bus), events=SES_EVENTS
        )
        self.sms = smsvoice.CfnConfigurationSet(self, "SmsConfigurationSet")

    @property
    def email_configuration_set(self) -> str:
        return self.email.configuration_set_name

    @property
    def sms_configuration_set(self) -> str:
        return self.sms.ref
