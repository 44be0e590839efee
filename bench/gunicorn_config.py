"""gunicorn settings for bench/web.py's servers: the server hooks `bidhub serve` sets that do
not depend on how the app is loaded (bench/web.py serves bidhub beside a bare page)."""

from bidhub.serving import freeze_once_loaded

post_worker_init = freeze_once_loaded
