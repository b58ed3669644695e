"""Twitter unreachable: the comment is saved and the page answers; only the tweet is lost, and logged."""


def test_the_comment_is_saved_when_twitter_refuses_connections(site, twitter, photo):
    twitter.set_mode("refuse")  # nothing listens on the API port any more

    response = site.comment(photo, "Nobody home")

    assert response.status_code == 303, f"the saved comment answered {response.status_code}"
    assert "Nobody home" in site.photo_page(photo).text
    assert "tweet lost" in site.web.log_text(), "no trace: the log must say the tweet is lost"
