"""An example jupyterhub_config.py: one `tutor serve` for the whole class, as a JupyterHub managed service.

The Hub starts `tutor serve --hub` with the service's settings in its environment and routes
<hub>/services/tutor/ to it. Each student's request carries the student's own Hub token; the
service asks the Hub whose it is (jupyterhub's HubAuth), so there is no class token to hand out or
leak, and the Hub's user name is who the server is fair to and caps. Students' servers need no setup:
the spawner gives them TUTOR_ENDPOINT, and their own JUPYTERHUB_API_TOKEN is the key the tutor sends
to a Hub service (docs/serving.md#jupyterhub).

Needs on the Hub's machine: jupyterhub (pip install jupyterhub), configurable-http-proxy
(npm install -g configurable-http-proxy) and tutor with torch for the GPU; in the students' image, tutor.
Start with:  jupyterhub -f jupyterhub_config.py
"""

c = get_config()  # noqa: F821 (JupyterHub defines it while it reads this file)

# The proxy's address as the students' servers reach it (here all on one machine; on Kubernetes
# z2jh's in-cluster name, e.g. http://proxy-public).
HUB_URL = "http://127.0.0.1:8000"
c.JupyterHub.bind_url = HUB_URL

c.JupyterHub.services = [
    {
        "name": "tutor",
        # Where `tutor serve --hub` listens: the Hub passes it on as JUPYTERHUB_SERVICE_URL and the
        # proxy sends <hub>/services/tutor/... there, path and all.
        "url": "http://127.0.0.1:10101",
        "command": [
            "tutor", "serve", "--hub",
            "--model", "/srv/models/codegemma-2b",           # inline completion (FIM)
            "--chat-model", "/srv/models/codegemma-7b-it",   # explain, fix, hints, chat
            "--max-per-user", "4",                           # requests one student may run at once
            # "--problems", "/srv/course/problems",          # grading on the server (hidden tests stay here)
        ],
        # A managed service gets only the Hub's env_keep (PATH, PYTHONPATH, ...) and what is here.
        "environment": {"TUTOR_DEVICE": "cuda"},
        # Seconds the Hub waits for the service to answer before it gives up and exits (JupyterHub 6+;
        # default 30; drop the key on older Hubs). `tutor serve` listens once its models are loaded and
        # their decode steps compiled: minutes on a GPU, and over 30 s on a busy CPU even for a tiny one.
        "timeout": 600,
        "display": False,  # an API, not a page: no entry in the Hub's Services menu
    },
]

SERVICE_SCOPE = "access:services!service=tutor"
c.JupyterHub.load_roles = [
    # Every user may use the service (the built-in "user" role, extended). For one class only, make a
    # role of its own instead: {"name": "tutor-users", "scopes": [SERVICE_SCOPE], "groups": ["class-7b"]}.
    {"name": "user", "scopes": ["self", SERVICE_SCOPE]},
]

# The token each student's server gets (its JUPYTERHUB_API_TOKEN) holds the default server scopes and,
# where its user has it, access to the tutor service (JupyterHub 4+). Without this the token is
# refused with 403 (it lacks access:services!service=tutor).
c.Spawner.server_token_scopes = ["users:activity!user", "access:servers!server", SERVICE_SCOPE]

# Students' servers find the service with no setup of their own.
c.Spawner.environment = {
    "TUTOR_ENDPOINT": f"{HUB_URL}/services/tutor",
    # The model names the server lists (/v1/models) are chosen automatically; a local copy of the
    # tokenizer, if the image has one, lets inline completion send token ids:
    # "TUTOR_COMPLETION_MODEL": "/srv/models/codegemma-2b",
}

# The rest is a Hub like any other: your authenticator and spawner, e.g.
# c.JupyterHub.authenticator_class = "github"   (oauthenticator)
# c.JupyterHub.spawner_class = "docker"          (dockerspawner)
