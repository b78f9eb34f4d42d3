#!/bin/sh
# Exit 1 when the broker answers but this host's worker does not reply to a ping; 0 otherwise
# (a broker outage is not the worker's fault: it reconnects by itself). Run from the project
# directory with the production environment (trustgate-worker-check.service does both).
set -u
celery=${CELERY:-.venv/bin/celery}
python=${PYTHON:-.venv/bin/python}
node=${WORKER_NODE:-celery@$(hostname)}

if ! "$python" -c 'from config.celery import app; app.connection_for_write().ensure_connection(max_retries=1, timeout=5)' >/dev/null 2>&1; then
    echo "broker unreachable: not judging the worker"
    exit 0
fi
if "$celery" -A config inspect ping --destination "$node" --timeout 10 >/dev/null 2>&1; then
    exit 0
fi
echo "$node did not answer a ping while the broker is up"
exit 1
