from leaderboard import views

# At the site's root (config.urls): the public board and the avatars.
urlpatterns = [*views.public_urlpatterns]

# Under /w/<workspace>/ (config.urls).
workspace_urlpatterns = [*views.pages]
