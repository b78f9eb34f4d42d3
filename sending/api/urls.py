from rest_framework.routers import SimpleRouter

from sending.api.views import DomainViewSet, MailboxViewSet

router = SimpleRouter()
router.register("domains", DomainViewSet, basename="domain")
router.register("mailboxes", MailboxViewSet, basename="mailbox")

urlpatterns = router.urls
