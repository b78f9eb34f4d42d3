from rest_framework import serializers

from accounts.models import Membership, Role, User, Workspace


class WorkspaceSerializer(serializers.ModelSerializer):
    role = serializers.ChoiceField(
        choices=Role.choices, read_only=True, help_text="Your role in this workspace."
    )

    class Meta:
        model = Workspace
        fields = ["public_id", "name", "leaderboard_handle", "role", "created_at"]
        read_only_fields = ["public_id", "leaderboard_handle", "role", "created_at"]


class WorkspaceUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120)


class MemberSerializer(serializers.ModelSerializer):
    email = serializers.EmailField(source="user.email", read_only=True)
    full_name = serializers.CharField(source="user.full_name", read_only=True)

    class Meta:
        model = Membership
        fields = ["email", "full_name", "role", "created_at"]


class TokenInfoSerializer(serializers.Serializer):
    name = serializers.CharField()
    prefix = serializers.CharField()
    workspace = serializers.CharField(source="workspace.public_id")


class MeSerializer(serializers.ModelSerializer):
    token = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = ["email", "full_name", "is_staff", "date_joined", "token"]

    def get_token(self, user: User) -> dict | None:
        token = self.context.get("token")
        return TokenInfoSerializer(token).data if token else None
