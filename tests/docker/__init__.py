"""DockerEngine tests: they talk to a real dockerd (DOCKER_HOST), normally the
private test daemon of scripts/dockerd-for-tests.sh (`make docker-env-start`)."""
