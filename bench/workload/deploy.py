"""The benchmark workload for pyinfra: the same state as site.yml (converge) and site-ansible.yml.

The unit, the logrotate stanza and the vhost are the text converge's modules render
(templates/*.j2, shared with Ansible). pyinfra has no `validate`: each is checked right after
it is written (systemd-analyze verify, logrotate -d, nginx -t before the reload), and only when
it changed. ufw has no operation: one server.shell, run when ufw's files differ from the rules.
"""

from pathlib import Path

import yaml
from pyinfra import host
from pyinfra.facts.server import Command
from pyinfra.operations import files, server, systemd

here = Path(__file__).resolve().parent
v = yaml.safe_load((here / "vars.yml").read_text())
app = v["app"]

server.group(name="app group", group=app, system=True)
server.user(
    name="service account",
    user=app,
    system=True,
    group=app,
    shell="/usr/sbin/nologin",
    home=f"/opt/{app}",
    ensure_home=False,
    create_home=False,
)
for item in ["config", "releases", "bin"]:
    files.directory(name=f"layout [{item}]", path=f"/opt/{app}/{item}", user=app, group=app, mode="755")
files.directory(name="log dir", path=f"/var/log/{app}", user=app, group=app, mode="750")
files.template(
    name="app config",
    src=str(here / "templates/config.yaml.j2"),
    dest=f"/opt/{app}/config/config.yaml",
    user=app,
    group=app,
    mode="640",
    inventory_hostname=host.name,
    **v,
)
files.put(
    name="binary",
    src=str(here / "files/binary"),
    dest=f"/opt/{app}/bin/{app}",
    user="root",
    group="root",
    mode="755",
)
files.link(name="current", path=f"/opt/{app}/current", target=f"/opt/{app}/bin")
unit = files.template(
    name="unit",
    src=str(here / "templates/unit.j2"),
    dest=f"/etc/systemd/system/{app}.service",
    user="root",
    group="root",
    mode="644",
    **v,
)
server.shell(
    name="verify unit",
    commands=[f"systemd-analyze verify --man=no /etc/systemd/system/{app}.service"],
    _if=unit.did_change,
)
systemd.daemon_reload(name="daemon-reload", _if=unit.did_change)
systemd.service(name="app service", service=f"{app}.service", running=True, enabled=True)
rotate = files.template(
    name="logrotate",
    src=str(here / "templates/logrotate.j2"),
    dest=f"/etc/logrotate.d/{app}",
    user="root",
    group="root",
    mode="644",
    **v,
)
server.shell(name="check logrotate", commands=[f"logrotate -d -s /dev/null /etc/logrotate.d/{app}"], _if=rotate.did_change)
files.directory(name="acme webroot", path="/var/www/letsencrypt", user="root", group="root", mode="755")
site = files.template(
    name="vhost",
    src=str(here / "templates/vhost.j2"),
    dest=f"/etc/nginx/sites-available/{app}",
    user="root",
    group="root",
    mode="644",
    **v,
)
link = files.link(name="vhost enabled", path=f"/etc/nginx/sites-enabled/{app}", target=f"/etc/nginx/sites-available/{app}")
server.shell(
    name="nginx -t and reload",
    commands=["nginx -t -q", "systemctl reload nginx"],
    _if=lambda: site.did_change() or link.did_change(),
)
# ufw's state as converge reads it: its files. One fact (one exec), the CLI only on a difference.
ufw_wanted = "ENABLED=yes\nDEFAULT_INPUT_POLICY=\"DROP\"\nDEFAULT_OUTPUT_POLICY=\"ACCEPT\"\n" + "".join(
    f"### tuple ### allow tcp {port} {any_} any {any_} in\n"
    for any_ in ["0.0.0.0/0", "::/0"]
    for port in [22, 80, 443]
)
ufw_now = host.get_fact(
    Command,
    "grep -h '^ENABLED=' /etc/ufw/ufw.conf; grep -h -E '^DEFAULT_(INPUT|OUTPUT)_POLICY=' /etc/default/ufw;"
    " grep -h '^### tuple' /etc/ufw/user.rules /etc/ufw/user6.rules; true",
)
if (ufw_now or "").strip() != ufw_wanted.strip():
    server.shell(
        name="firewall",
        commands=[
            "ufw default deny incoming",
            "ufw default allow outgoing",
            "ufw allow 22/tcp",
            "ufw allow 80/tcp",
            "ufw allow 443/tcp",
            "ufw --force enable",
        ],
    )
