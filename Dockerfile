# The image of the API and the worker (docker-compose.yml). Not built here: no Docker engine.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY . .
RUN pip install --no-cache-dir .
USER nobody
EXPOSE 8000
# The API by default (docker-compose.yml gives each service its own command). X-Forwarded-For
# is never uvicorn's to believe: the app trusts it only from TRUSTED_PROXIES (default none).
CMD ["uvicorn", "api.main:app_factory", "--factory", "--host", "0.0.0.0", "--port", "8000", "--no-proxy-headers"]
