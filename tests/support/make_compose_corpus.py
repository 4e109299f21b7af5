#!/usr/bin/env python3
"""Writes tests/compose_corpus: compose projects in the shape of the public samples people copy
(one folder each, with the Dockerfiles and config files beside the compose file). The corpus is
committed; this script is how it was made, to add a project or change one: edit, run, commit.
Everything must stay valid for docker-compose 1.29 (the reference the parity test runs), so
keys only newer compose reads (`include`, `configs.content`, `${VAR:+x}`) are tested elsewhere.
"""
import os, textwrap
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "compose_corpus")
P = {}
def proj(name, files):
    P[name] = files

proj("nginx-static", {
"compose.yaml": """
services:
  web:
    image: nginx:1.25-alpine
    ports:
      - "8080:80"
    volumes:
      - ./nginx.conf:/etc/nginx/nginx.conf:ro
      - ./html:/usr/share/nginx/html:ro
    restart: unless-stopped
""",
"nginx.conf": "events {}\nhttp {\n  server {\n    listen 80;\n    root /usr/share/nginx/html;\n  }\n}\n",
"html/index.html": "<h1>hello</h1>\n",
})

proj("flask-redis", {
"compose.yaml": """
services:
  web:
    build: .
    ports:
      - "8000:5000"
    environment:
      FLASK_DEBUG: "0"
      REDIS_HOST: redis
    depends_on:
      - redis
  redis:
    image: "redis:7-alpine"
""",
"Dockerfile": "FROM 127.0.0.1:5000/busybox:latest\nCOPY app.py /app/app.py\nCMD [\"sh\", \"-c\", \"sleep 3600\"]\n",
"app.py": "print('hello')\n",
"requirements.txt": "flask\nredis\n",
})

proj("wordpress-mysql", {
"docker-compose.yml": """
version: "3.9"
services:
  db:
    image: mysql:8.0
    volumes:
      - db_data:/var/lib/mysql
    restart: always
    environment:
      MYSQL_ROOT_PASSWORD: ${MYSQL_ROOT_PASSWORD}
      MYSQL_DATABASE: wordpress
      MYSQL_USER: wordpress
      MYSQL_PASSWORD: ${MYSQL_PASSWORD:-wordpress}
  wordpress:
    depends_on:
      - db
    image: wordpress:latest
    volumes:
      - wordpress_data:/var/www/html
    ports:
      - "8000:80"
    restart: always
    environment:
      WORDPRESS_DB_HOST: db:3306
      WORDPRESS_DB_USER: wordpress
      WORDPRESS_DB_PASSWORD: ${MYSQL_PASSWORD:-wordpress}
      WORDPRESS_DB_NAME: wordpress
volumes:
  db_data: {}
  wordpress_data: {}
""",
".env": "MYSQL_ROOT_PASSWORD=somewordpress\nMYSQL_PASSWORD=wp-secret\n",
})

proj("prometheus-grafana", {
"compose.yaml": """
services:
  prometheus:
    image: prom/prometheus:v2.53.0
    container_name: prometheus
    command:
      - '--config.file=/etc/prometheus/prometheus.yml'
      - '--storage.tsdb.retention.time=15d'
    ports:
      - 9090:9090
    restart: unless-stopped
    volumes:
      - ./prometheus:/etc/prometheus
      - prom_data:/prometheus
  grafana:
    image: grafana/grafana:11.1.0
    container_name: grafana
    ports:
      - 3000:3000
    restart: unless-stopped
    environment:
      - GF_SECURITY_ADMIN_USER=admin
      - GF_SECURITY_ADMIN_PASSWORD=${GRAFANA_PASSWORD:-grafana}
    volumes:
      - ./grafana/provisioning:/etc/grafana/provisioning
      - grafana_data:/var/lib/grafana
    depends_on:
      - prometheus
  node-exporter:
    image: prom/node-exporter:v1.8.1
    command: --path.rootfs=/host --collector.filesystem.mount-points-exclude="^/(sys|proc|dev)($$|/)"
    expose:
      - 9100
volumes:
  prom_data:
  grafana_data:
""",
"prometheus/prometheus.yml": "global:\n  scrape_interval: 15s\nscrape_configs:\n  - job_name: prometheus\n    static_configs:\n      - targets: ['localhost:9090']\n  - job_name: node\n    static_configs:\n      - targets: ['node-exporter:9100']\n",
"grafana/provisioning/datasources/datasource.yml": "apiVersion: 1\ndatasources:\n  - name: Prometheus\n    type: prometheus\n    url: http://prometheus:9090\n    isDefault: true\n",
"grafana/provisioning/dashboards/dashboard.yml": "apiVersion: 1\nproviders:\n  - name: default\n    folder: ''\n    type: file\n    options:\n      path: /etc/grafana/provisioning/dashboards\n",
})

proj("traefik-whoami", {
"compose.yaml": """
services:
  traefik:
    image: traefik:v3.0
    command:
      - --providers.file.filename=/etc/traefik/dynamic.yml
      - --entrypoints.web.address=:80
      - --api.dashboard=true
    ports:
      - "80:80"
      - "127.0.0.1:8080:8080"
    volumes:
      - ./traefik/dynamic.yml:/etc/traefik/dynamic.yml:ro
  whoami:
    image: traefik/whoami
    labels:
      - "traefik.enable=true"
      - "traefik.http.routers.whoami.rule=Host(`whoami.localhost`)"
""",
"traefik/dynamic.yml": "http:\n  routers:\n    whoami:\n      rule: Host(`whoami.localhost`)\n      service: whoami\n  services:\n    whoami:\n      loadBalancer:\n        servers:\n          - url: http://whoami:80\n",
})

proj("postgres-pgadmin", {
"compose.yaml": """
services:
  postgres:
    image: postgres:16
    environment:
      POSTGRES_USER: app
      POSTGRES_PASSWORD_FILE: /run/secrets/db_password
      POSTGRES_DB: app
      PGDATA: /var/lib/postgresql/data/pgdata
    secrets:
      - db_password
    volumes:
      - pgdata:/var/lib/postgresql/data
      - ./init:/docker-entrypoint-initdb.d:ro
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -U app"]
      interval: 10s
      timeout: 5s
      retries: 5
  pgadmin:
    image: dpage/pgadmin4:8
    environment:
      PGADMIN_DEFAULT_EMAIL: admin@example.com
      PGADMIN_DEFAULT_PASSWORD: ${PGADMIN_PASSWORD:-admin}
    ports:
      - "5050:80"
    depends_on:
      postgres:
        condition: service_healthy
secrets:
  db_password:
    file: ./secrets/db_password.txt
volumes:
  pgdata:
""",
"init/01-schema.sql": "CREATE TABLE items (id serial primary key, name text);\n",
"secrets/db_password.txt": "corpus-db-password\n",
})

proj("node-mongo", {
"compose.yaml": """
services:
  api:
    build:
      context: ./api
      dockerfile: Dockerfile
      args:
        NODE_ENV: production
        APP_VERSION: "1.4.2"
      target: runtime
    image: corpus/node-api:1.4.2
    ports:
      - "3000:3000"
    environment:
      - MONGO_URL=mongodb://mongo:27017/app
      - NODE_ENV=production
    volumes:
      - /app/node_modules
    depends_on:
      - mongo
  mongo:
    image: mongo:7
    volumes:
      - mongo-data:/data/db
    command: ["mongod", "--bind_ip_all"]
volumes:
  mongo-data:
""",
"api/Dockerfile": "FROM 127.0.0.1:5000/busybox:latest AS build\nARG NODE_ENV\nARG APP_VERSION\nRUN echo $APP_VERSION > /version\nFROM build AS runtime\nCMD [\"sleep\", \"3600\"]\n",
"api/package.json": "{\"name\": \"api\", \"version\": \"1.4.2\"}\n",
})

proj("django-postgres-nginx", {
"docker-compose.yml": """
version: '3.8'
services:
  web:
    build: ./app
    command: gunicorn config.wsgi:application --bind 0.0.0.0:8000 --workers "3"
    volumes:
      - static_volume:/home/app/web/staticfiles
    expose:
      - 8000
    env_file:
      - ./.env.prod
    depends_on:
      db:
        condition: service_healthy
  db:
    image: postgres:15
    volumes:
      - postgres_data:/var/lib/postgresql/data/
    env_file:
      - ./.env.prod.db
    healthcheck:
      test: ["CMD", "pg_isready", "-U", "hello_django"]
      interval: 5s
      retries: 10
  nginx:
    image: nginx:1.25
    volumes:
      - static_volume:/home/app/web/staticfiles
      - ./nginx/conf.d:/etc/nginx/conf.d:ro
    ports:
      - 1337:80
    depends_on:
      - web
volumes:
  postgres_data:
  static_volume:
""",
".env.prod": "DEBUG=0\nSECRET_KEY=change_me\nDJANGO_ALLOWED_HOSTS=localhost 127.0.0.1\nSQL_ENGINE=django.db.backends.postgresql\nSQL_HOST=db\n# a comment\nSQL_PORT=5432\n",
".env.prod.db": "POSTGRES_USER=hello_django\nPOSTGRES_PASSWORD=hello_django\nPOSTGRES_DB=hello_django_prod\n",
"app/Dockerfile": "FROM 127.0.0.1:5000/busybox:latest\nCMD [\"sleep\", \"3600\"]\n",
"nginx/conf.d/default.conf": "upstream web { server web:8000; }\nserver { listen 80; location / { proxy_pass http://web; } }\n",
})

proj("gitea", {
"compose.yaml": """
networks:
  gitea:
    external: false
services:
  server:
    image: gitea/gitea:1.22
    container_name: gitea
    environment:
      - USER_UID=1000
      - USER_GID=1000
      - GITEA__database__DB_TYPE=postgres
      - GITEA__database__HOST=db:5432
      - GITEA__database__NAME=gitea
      - GITEA__database__USER=gitea
      - GITEA__database__PASSWD=gitea
    restart: always
    networks:
      - gitea
    volumes:
      - gitea:/data
    ports:
      - "3000:3000"
      - "222:22"
    depends_on:
      - db
  db:
    image: postgres:14
    restart: always
    environment:
      - POSTGRES_USER=gitea
      - POSTGRES_PASSWORD=gitea
      - POSTGRES_DB=gitea
    networks:
      - gitea
    volumes:
      - postgres:/var/lib/postgresql/data
volumes:
  gitea:
  postgres:
""",
})

proj("nextcloud-mariadb-redis", {
"compose.yaml": """
services:
  db:
    image: mariadb:10.11
    restart: always
    command: --transaction-isolation=READ-COMMITTED --log-bin=binlog --binlog-format=ROW
    volumes:
      - db:/var/lib/mysql
    environment:
      - MYSQL_ROOT_PASSWORD=${DB_ROOT_PASSWORD:?set DB_ROOT_PASSWORD in .env}
      - MYSQL_PASSWORD=${DB_PASSWORD}
      - MYSQL_DATABASE=nextcloud
      - MYSQL_USER=nextcloud
  redis:
    image: redis:alpine
    restart: always
  app:
    image: nextcloud
    restart: always
    ports:
      - 8080:80
    links:
      - db
    volumes:
      - nextcloud:/var/www/html
    environment:
      - MYSQL_PASSWORD=${DB_PASSWORD}
      - MYSQL_DATABASE=nextcloud
      - MYSQL_USER=nextcloud
      - MYSQL_HOST=db
      - REDIS_HOST=redis
    depends_on:
      - redis
volumes:
  nextcloud:
  db:
""",
".env": "DB_ROOT_PASSWORD=root-secret\nDB_PASSWORD=nc-secret\n",
})

proj("elasticsearch-kibana", {
"compose.yaml": """
services:
  elasticsearch:
    image: docker.elastic.co/elasticsearch/elasticsearch:8.14.1
    container_name: es01
    environment:
      - discovery.type=single-node
      - xpack.security.enabled=false
      - "ES_JAVA_OPTS=-Xms512m -Xmx512m"
    ulimits:
      memlock:
        soft: -1
        hard: -1
      nofile: 65536
    mem_limit: 1g
    volumes:
      - esdata:/usr/share/elasticsearch/data
    ports:
      - 127.0.0.1:9200:9200
  kibana:
    image: docker.elastic.co/kibana/kibana:8.14.1
    environment:
      ELASTICSEARCH_HOSTS: '["http://es01:9200"]'
    ports:
      - 5601:5601
    depends_on:
      - elasticsearch
volumes:
  esdata:
    driver: local
""",
})

proj("minio", {
"compose.yaml": """
services:
  minio:
    image: quay.io/minio/minio:RELEASE.2024-06-13T22-53-53Z
    command: server /data --console-address ":9001"
    ports:
      - "9000:9000"
      - "9001:9001"
    environment:
      MINIO_ROOT_USER: ${MINIO_ROOT_USER:-minioadmin}
      MINIO_ROOT_PASSWORD: ${MINIO_ROOT_PASSWORD:-minioadmin}
    volumes:
      - minio_data:/data
    healthcheck:
      test: ["CMD", "mc", "ready", "local"]
      interval: 30s
      timeout: 20s
      retries: 3
      start_period: 10s
volumes:
  minio_data:
""",
})

proj("profiles-tools", {
"compose.yaml": """
services:
  app:
    image: corpus/app:2
    ports: ["8081:8080"]
  adminer:
    image: adminer
    profiles: [debug]
    ports: ["8082:8080"]
  mailhog:
    image: mailhog/mailhog
    profiles: ["dev", "debug"]
  migrate:
    image: corpus/app:2
    command: ["app", "migrate"]
    profiles: [tools]
""",
})

proj("interpolation", {
"compose.yaml": """
services:
  app:
    image: "${REGISTRY:-docker.io}/corpus/app:${TAG:-latest}"
    command: sh -c 'echo $$HOME && exec app --port ${PORT-8080}'
    environment:
      LOG_LEVEL: ${LOG_LEVEL:-info}
      FEATURE_X: ${FEATURE_X}
      EMPTY_DEFAULT: ${UNSET_VAR-}
      LITERAL: "$${NOT_INTERPOLATED}"
      APP_ENV: ${APP_ENV}
    ports:
      - "${HOST_PORT:-8090}:${PORT-8080}"
""",
".env": "TAG=3.1.0\nFEATURE_X=1\nAPP_ENV=production\n# HOST_PORT is left to its default\nLOG_LEVEL='debug'\n",
})

proj("extends-common", {
"compose.yaml": """
services:
  web:
    extends:
      file: common-services.yml
      service: webapp
    environment:
      - ROLE=web
    ports:
      - "8100:8000"
  worker:
    extends:
      file: common-services.yml
      service: webapp
    command: ["worker", "--queue", "default"]
    environment:
      - ROLE=worker
  queue:
    image: redis:7
""",
"common-services.yml": """
services:
  webapp:
    image: corpus/webapp:5
    environment:
      - DEBUG=false
      - ROLE=base
    volumes:
      - ./config:/etc/webapp:ro
    command: ["serve"]
""",
"config/settings.ini": "[app]\nname=webapp\n",
})

proj("secrets-files", {
"compose.yaml": """
services:
  app:
    image: corpus/secure-app:1
    secrets:
      - api_key
      - source: tls_cert
        target: server.crt
        uid: "1000"
        gid: "1000"
        mode: 0440
    environment:
      API_KEY_FILE: /run/secrets/api_key
  db:
    image: mysql:8
    environment:
      MYSQL_ROOT_PASSWORD_FILE: /run/secrets/db_root
    secrets:
      - db_root
secrets:
  api_key:
    file: ./secrets/api_key.txt
  tls_cert:
    file: ./certs/server.crt
  db_root:
    file: ./secrets/db_root.txt
""",
"secrets/api_key.txt": "corpus-api-key\n",
"secrets/db_root.txt": "corpus-root\n",
"certs/server.crt": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
})

proj("configs-files", {
"compose.yaml": """
services:
  proxy:
    image: haproxy:2.9
    configs:
      - source: haproxy_cfg
        target: /usr/local/etc/haproxy/haproxy.cfg
    ports:
      - "8404:8404"
  app:
    image: corpus/app:2
    configs:
      - app_settings
configs:
  haproxy_cfg:
    file: ./haproxy.cfg
  app_settings:
    file: ./settings.json
""",
"haproxy.cfg": "global\n  maxconn 256\ndefaults\n  mode http\nfrontend stats\n  bind *:8404\n",
"settings.json": "{\"feature\": true}\n",
})

proj("networks-segmented", {
"compose.yaml": """
services:
  proxy:
    image: nginx:1.25
    networks:
      - frontend
    ports:
      - "8443:443"
  api:
    image: corpus/api:3
    networks:
      frontend:
        aliases:
          - api.internal
      backend:
        ipv4_address: 172.30.5.10
  db:
    image: postgres:16
    networks:
      backend:
        aliases: [database]
networks:
  frontend:
  backend:
    internal: true
    ipam:
      config:
        - subnet: 172.30.5.0/24
""",
})

proj("healthcheck-deps", {
"compose.yaml": """
services:
  db:
    image: postgres:16
    healthcheck:
      test: pg_isready -U postgres
      interval: 2s
      timeout: 3s
      retries: 15
  migrate:
    image: corpus/app:2
    command: ["app", "migrate"]
    depends_on:
      db:
        condition: service_healthy
  app:
    image: corpus/app:2
    depends_on:
      migrate:
        condition: service_completed_successfully
      db:
        condition: service_healthy
    healthcheck:
      test: ["CMD", "wget", "-qO-", "http://localhost:8080/health"]
      interval: 10s
""",
})

proj("deploy-limits", {
"compose.yaml": """
services:
  api:
    image: corpus/api:3
    deploy:
      resources:
        limits:
          cpus: '0.50'
          memory: 512M
        reservations:
          memory: 128M
      restart_policy:
        condition: on-failure
        max_attempts: 3
  worker:
    image: corpus/worker:3
    cpus: 1.5
    mem_limit: 256m
    mem_reservation: 64m
    pids_limit: 200
    restart: on-failure:5
""",
})

proj("env-files", {
"compose.yaml": """
services:
  app:
    image: corpus/app:2
    env_file:
      - common.env
      - app.env
    environment:
      OVERRIDE: from-compose
      EXTRA: "yes"
""",
"common.env": "SHARED=1\nOVERRIDE=from-common\n# comments and blank lines\n\nQUOTED=\"a b c\"\n",
"app.env": "APP_ONLY=2\nexport EXPORTED=3\n",
})

proj("mosquitto-homeassistant", {
"compose.yaml": """
services:
  mosquitto:
    image: eclipse-mosquitto:2
    ports:
      - "1883:1883"
      - "9001:9001"
    volumes:
      - ./mosquitto/config:/mosquitto/config
      - ./mosquitto/data:/mosquitto/data
      - ./mosquitto/log:/mosquitto/log
    restart: unless-stopped
  homeassistant:
    image: ghcr.io/home-assistant/home-assistant:stable
    volumes:
      - ./ha-config:/config
      - /srv/media:/media:ro
    environment:
      TZ: Europe/Berlin
    ports:
      - "8123:8123"
    restart: unless-stopped
    depends_on:
      - mosquitto
""",
"mosquitto/config/mosquitto.conf": "listener 1883\nallow_anonymous true\npersistence true\npersistence_location /mosquitto/data/\n",
})

proj("hardened-service", {
"compose.yaml": """
services:
  app:
    image: corpus/app:2
    read_only: true
    tmpfs:
      - /tmp
      - /run
    cap_drop:
      - ALL
    cap_add:
      - NET_BIND_SERVICE
    security_opt:
      - no-new-privileges:true
    user: "1000:1000"
    sysctls:
      net.core.somaxconn: 1024
    logging:
      driver: json-file
      options:
        max-size: "10m"
        max-file: "3"
    init: true
    stop_grace_period: 30s
    stop_signal: SIGINT
    working_dir: /srv/app
    hostname: app01
    extra_hosts:
      - "metadata.internal:10.0.0.1"
    dns:
      - 10.0.0.53
""",
})

proj("rails-sidekiq", {
"compose.yaml": """
x-app: &app
  image: corpus/rails:dev
  environment: &env
    RAILS_ENV: production
    DATABASE_URL: postgres://postgres:postgres@postgres:5432/app
    REDIS_URL: redis://redis:6379/1
  depends_on:
    - postgres
    - redis
services:
  web:
    <<: *app
    build:
      context: .
      args:
        RUBY_VERSION: "3.3"
    command: bundle exec rails server -b 0.0.0.0
    ports:
      - "3000:3000"
  sidekiq:
    <<: *app
    command: bundle exec sidekiq
  postgres:
    image: postgres:16
    environment:
      POSTGRES_PASSWORD: postgres
    volumes:
      - pg:/var/lib/postgresql/data
  redis:
    image: redis:7
    volumes:
      - redis:/data
volumes:
  pg:
  redis:
""",
"Dockerfile": "ARG RUBY_VERSION\nFROM 127.0.0.1:5000/busybox:latest\nCMD [\"sleep\", \"3600\"]\n",
"Gemfile": "source 'https://rubygems.org'\ngem 'rails'\n",
})

proj("multistage-target", {
"compose.yaml": """
services:
  app:
    build:
      context: .
      dockerfile: docker/Dockerfile.prod
      target: production
      args:
        - GO_VERSION=1.22
    ports:
      - "127.0.0.1:8088:8080"
    restart: always
""",
"docker/Dockerfile.prod": "ARG GO_VERSION\nFROM 127.0.0.1:5000/busybox:latest AS build\nRUN echo built > /out\nFROM 127.0.0.1:5000/busybox:latest AS production\nCOPY --from=build /out /out\nCMD [\"sleep\", \"3600\"]\n",
"main.go": "package main\nfunc main() {}\n",
})

proj("pull-always", {
"compose.yaml": """
services:
  watch:
    image: corpus/edge:nightly
    pull_policy: always
    restart: unless-stopped
  pinned:
    image: corpus/edge:1.0
    pull_policy: if_not_present
""",
})

proj("legacy-links", {
"docker-compose.yml": """
version: '2.4'
services:
  web:
    image: corpus/legacy-web:1
    links:
      - db:database
      - cache
    expose:
      - "8080"
    ports:
      - "8085:8080"
  db:
    image: mysql:5.7
    environment:
      MYSQL_ALLOW_EMPTY_PASSWORD: "yes"
  cache:
    image: memcached:1.6
""",
})

proj("vaultwarden", {
"compose.yaml": """
services:
  vaultwarden:
    image: vaultwarden/server:latest
    container_name: vaultwarden
    restart: unless-stopped
    environment:
      DOMAIN: "https://vw.example.com"
      SIGNUPS_ALLOWED: "false"
    volumes:
      - ./vw-data/:/data/
    ports:
      - 127.0.0.1:8000:80
""",
})

proj("uptime-kuma-caddy", {
"compose.yaml": """
services:
  uptime-kuma:
    image: louislam/uptime-kuma:1
    volumes:
      - uptime-kuma:/app/data
    restart: always
  caddy:
    image: caddy:2
    ports:
      - "80:80"
      - "443:443"
      - "443:443/udp"
    volumes:
      - ./Caddyfile:/etc/caddy/Caddyfile:ro
      - caddy_data:/data
      - caddy_config:/config
    restart: always
volumes:
  uptime-kuma:
  caddy_data:
  caddy_config:
""",
"Caddyfile": "status.example.com {\n  reverse_proxy uptime-kuma:3001\n}\n",
})

proj("long-syntax", {
"compose.yaml": """
services:
  app:
    image: corpus/app:2
    ports:
      - target: 80
        published: 8086
        protocol: tcp
        mode: host
      - target: 53
        published: 5353
        protocol: udp
    volumes:
      - type: volume
        source: app-data
        target: /var/lib/app
      - type: bind
        source: ./conf
        target: /etc/app
        read_only: true
      - type: tmpfs
        target: /cache
    entrypoint: ["/docker-entrypoint.sh"]
    command: ["--config", "/etc/app/app.conf"]
volumes:
  app-data:
    name: corpus-app-data
""",
"conf/app.conf": "listen 80\n",
})

proj("monorepo-subdir", {
"deploy/compose.yaml": """
services:
  frontend:
    build: ../frontend
    ports: ["8087:80"]
    depends_on: [backend]
  backend:
    build:
      context: ../backend
    environment:
      - PORT=9000
    volumes:
      - ../backend/config.toml:/etc/backend/config.toml:ro
""",
"frontend/Dockerfile": "FROM 127.0.0.1:5000/busybox:latest\nCMD [\"sleep\", \"3600\"]\n",
"backend/Dockerfile": "FROM 127.0.0.1:5000/busybox:latest\nCMD [\"sleep\", \"3600\"]\n",
"backend/config.toml": "port = 9000\n",
})

import shutil
if os.path.isdir(ROOT):
    shutil.rmtree(ROOT)
for name, files in P.items():
    for path, text in files.items():
        full = os.path.join(ROOT, name, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as f:
            f.write(textwrap.dedent(text).lstrip("\n") if path.endswith((".yaml", ".yml")) else text)
print(len(P), "projects")
