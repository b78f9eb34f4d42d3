from rest_framework.routers import SimpleRouter

from campaigns.api import campaigns, leads, suppressions

router = SimpleRouter()
for area in (campaigns, leads, suppressions):
    area.routes_register(router)

urlpatterns = router.urls
