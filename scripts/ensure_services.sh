#!/usr/bin/env bash
# Start the loopback database servers the protocol integration tests drive, if they are down:
# PostgreSQL 127.0.0.1:5432, MariaDB 127.0.0.1:3306, Redis 127.0.0.1:6379, RabbitMQ 127.0.0.1:5672,
# Mosquitto 127.0.0.1:1883, NATS 127.0.0.1:4222. Idempotent; needs root.
set -u

up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_up() {  # port name
  for _ in $(seq 1 50); do up "$1" && return 0; sleep 0.2; done
  echo "ensure_services: $2 did not start listening on 127.0.0.1:$1" >&2
  return 1
}

# A server that is not even installed is installed from Debian's packages first (the tests never skip).
need() {  # binary package
  command -v "$1" >/dev/null 2>&1 || [[ -x "$1" ]] && return 0
  echo "ensure_services: installing $2" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
}
need pg_ctlcluster postgresql
need redis-server redis-server
need /usr/sbin/mariadbd mariadb-server
need rabbitmq-server rabbitmq-server
need mosquitto mosquitto
need /usr/sbin/nats-server nats-server

rc=0
if ! up 5432; then
  echo "ensure_services: starting PostgreSQL" >&2
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || rc=1
  wait_up 5432 PostgreSQL || rc=1
fi
if ! up 6379; then
  echo "ensure_services: starting Redis" >&2
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || rc=1
  wait_up 6379 Redis || rc=1
fi
if ! up 3306; then
  echo "ensure_services: starting MariaDB" >&2
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || rc=1
  wait_up 3306 MariaDB || rc=1
fi
if ! up 5672; then
  echo "ensure_services: starting RabbitMQ" >&2
  rabbitmq-server -detached || rc=1
  for _ in $(seq 1 150); do up 5672 && break; sleep 0.2; done  # the Erlang VM takes a while
  wait_up 5672 RabbitMQ || rc=1
fi
if ! up 1883; then
  echo "ensure_services: starting Mosquitto" >&2
  mosquitto -d -c /etc/mosquitto/mosquitto.conf || rc=1
  wait_up 1883 Mosquitto || rc=1
fi
if ! up 4222; then
  echo "ensure_services: starting NATS" >&2
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log || rc=1
  wait_up 4222 NATS || rc=1
fi
exit $rc
