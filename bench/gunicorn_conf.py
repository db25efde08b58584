"""gunicorn settings for the side-by-side benchmarks (bench/servers.py, bench/run.py): the server `authz serve` used before granian."""

import os

bind = f"{os.environ.get('AUTHZ_HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("AUTHZ_WORKERS", "2"))
worker_class = "sync"
preload_app = True  # compile the policy once, in the master, before forking
timeout = 30
graceful_timeout = 10
accesslog = None
control_socket_disable = True  # several servers may run side by side (tests, benchmarks); none is managed that way


def post_fork(server, worker):
    from service.wsgi import app

    app.extensions["authz"].after_fork()


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def on_reload(server):
    """SIGHUP: load policy.polar again; it is used only if it loads and passes every scenario."""
    from service.wsgi import app

    result = app.extensions["authz"].keeper.reload()
    (server.log.info if result.loaded else server.log.error)("policy reload: %s", result.reason)


def worker_exit(server, worker):
    """A worker stopping gracefully writes what its decision log still buffers."""
    from service.wsgi import app

    app.extensions["authz"].close()
