#!/bin/sh
# As the official redis image: a redis-server started as root drops to the redis user and
# owns its data; without a configuration file it listens on every interface of the container
# (protected mode stays on unless a password is set, e.g. --requirepass).
set -e
if [ "${1#-}" != "$1" ]; then set -- redis-server "$@"; fi
if [ "$1" = redis-server ] && [ "$(id -u)" = 0 ]; then
  find . \! -user redis -exec chown redis '{}' +
  exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
fi
exec "$@"
