# Throwaway services for scripts/test and scripts/bench-scale (sourced, not run): Debian's
# PostgreSQL and Redis (and nginx), installed when missing, started on free loopback ports in
# temporary directories, and stopped and removed when the sourcing script exits.
#
#   install_package NAME      apt-get install without starting the package's service
#   start_services            PostgreSQL + Redis; sets PG_BIN, POSTGRES_URL, REDIS_URL
#   free_port                 a loopback port that was free a moment ago

# Debian's packages would start system services (PostgreSQL on 5432, Redis on 6379, nginx on
# 80) where they can; a policy-rc.d that refuses (the usual one in containers, put there for
# the install if there is none) keeps them from doing so.
install_package() {
  echo "installing $1 (Debian package)" >&2
  export DEBIAN_FRONTEND=noninteractive
  local policy=/usr/sbin/policy-rc.d own_policy= installed=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && own_policy=1
  fi
  apt-get install -y "$1" >/dev/null 2>&1 \
    || { apt-get update >/dev/null && apt-get install -y "$1" >/dev/null; } || installed=$?
  if [ -n "$own_policy" ]; then rm -f "$policy"; fi
  [ "$installed" -eq 0 ] || { echo "installing $1 failed" >&2; exit 1; }
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

start_services() {
  [ -n "$(pg_bin)" ] || install_package postgresql
  command -v redis-server >/dev/null || install_package redis-server
  PG_BIN="$(pg_bin)"
  services_pg_dir="$(mktemp -d /tmp/tessera-pg.XXXXXX)"
  services_redis_dir="$(mktemp -d /tmp/tessera-redis.XXXXXX)"
  trap stop_services EXIT
  local pg_port redis_port
  pg_port="$(free_port)"
  redis_port="$(free_port)"
  chown postgres "$services_pg_dir"
  runuser -u postgres -- "$PG_BIN/initdb" -D "$services_pg_dir/data" -A trust -U tessera >/dev/null
  runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$services_pg_dir/data" -l "$services_pg_dir/log" -w \
    -o "-p $pg_port -k $services_pg_dir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
  POSTGRES_URL="postgres://tessera@127.0.0.1:$pg_port/postgres"
  # Redis: no persistence, loopback only; users of it take a key prefix of their own.
  redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$services_redis_dir" --pidfile "$services_redis_dir/redis.pid" \
    --logfile "$services_redis_dir/log" --daemonize yes
  for _ in $(seq 50); do
    redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  REDIS_URL="redis://127.0.0.1:$redis_port"
}

stop_services() {
  if [ -n "${services_pg_dir:-}" ]; then
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$services_pg_dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$services_pg_dir" || true
  fi
  if [ -n "${services_redis_dir:-}" ]; then
    if [ -f "$services_redis_dir/redis.pid" ]; then
      local pid
      pid="$(cat "$services_redis_dir/redis.pid")"
      kill "$pid" 2>/dev/null || true
      # Redis writes its log until it is gone: removing the directory before would race it.
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -rf "$services_redis_dir" || true
  fi
}
