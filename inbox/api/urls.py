from rest_framework.routers import SimpleRouter

from inbox.api import views

router = SimpleRouter()
views.routes_register(router)

urlpatterns = router.urls
