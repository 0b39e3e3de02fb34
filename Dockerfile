# syntax=docker/dockerfile:1
# The STS calcinosis EDC: one image for web (gunicorn), worker and beat (celery); see README
# "Deployment" and docker-compose.yml. Static files are collected at build time and served by
# whitenoise, so no settings secret is baked in: the build uses a throw-away SECRET_KEY.

# --- Front-end packages from the npm registry (package-lock.json), never a CDN ----------------
FROM python:3.11-slim-bookworm AS assets
RUN apt-get update \
    && apt-get install -y --no-install-recommends nodejs npm \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund

# --- The application --------------------------------------------------------------------------
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    # gunicorn's worker count; override per host (about 2 x CPU cores + 1).
    WEB_CONCURRENCY=3

# WeasyPrint (PDF reports) loads pango, harfbuzz and cairo at run time and needs fonts.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libpango-1.0-0 libpangoft2-1.0-0 \
        libharfbuzz0b libharfbuzz-subset0 libcairo2 \
        fontconfig fonts-dejavu-core fonts-liberation \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY --from=assets /app/node_modules ./node_modules
COPY . .

# Build-time only: collectstatic imports the settings, which refuse to start without a key.
RUN SECRET_KEY="collectstatic-at-build-time-only-never-used-to-sign-anything-000000" \
    python manage.py collectstatic --no-input \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin edc \
    && mkdir -p /app/var/media /app/var/outbox \
    && chown -R edc:edc /app/var/media /app/var/outbox

USER edc
EXPOSE 8000
CMD ["gunicorn", "trial.wsgi", "--config", "python:trial.gunicorn_conf", "--bind", "0.0.0.0:8000", "--access-logfile", "-"]
