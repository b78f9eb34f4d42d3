from django.apps import AppConfig


class SendingConfig(AppConfig):
    name = "sending"
    verbose_name = "Sending domains and mailboxes"
