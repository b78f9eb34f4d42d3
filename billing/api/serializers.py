from rest_framework import serializers

from billing.models import CreditEntry


class LimitSerializer(serializers.Serializer):
    used = serializers.IntegerField()
    limit = serializers.IntegerField()


class BillingSerializer(serializers.Serializer):
    workspace = serializers.CharField()
    plan = serializers.CharField()
    standing = serializers.CharField()
    grace_ends = serializers.DateTimeField(allow_null=True)
    note = serializers.CharField()
    subscription_status = serializers.CharField()
    interval = serializers.CharField()
    renews_at = serializers.DateTimeField(allow_null=True)
    external_sending = serializers.BooleanField()
    api_access = serializers.BooleanField()
    domains = LimitSerializer()
    mailboxes = LimitSerializer()
    seats = LimitSerializer()
    credits = serializers.IntegerField()


class CheckoutSerializer(serializers.Serializer):
    price = serializers.CharField(
        help_text="A catalog price (starter_yearly, pro_monthly, pro_yearly) or its Stripe id."
    )
    success_url = serializers.URLField()
    cancel_url = serializers.URLField()


class CheckoutResultSerializer(serializers.Serializer):
    url = serializers.URLField()


class CreditEntrySerializer(serializers.ModelSerializer):
    class Meta:
        model = CreditEntry
        fields = ["kind", "amount", "balance_after", "reason", "reference", "created_at"]
