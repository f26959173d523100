"""The benchmark workload for pyinfra: the same state as site.yml (converge) and site-ansible.yml."""

from io import StringIO
from pathlib import Path

import yaml
from pyinfra import host
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
    name="app env",
    src=StringIO(f"GIN_MODE=release\nPORT={v['port']}\n"),
    dest=f"/opt/{app}/config/env",
    user=app,
    group=app,
    mode="640",
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
unit = f"""[Unit]
Description={app} (converge benchmark)
After=network.target

[Service]
User={app}
Group={app}
EnvironmentFile=/opt/{app}/config/env
ExecStart=/bin/sleep infinity
Restart=on-failure

[Install]
WantedBy=multi-user.target
"""
files.put(
    name="unit",
    src=StringIO(unit),
    dest=f"/etc/systemd/system/{app}.service",
    user="root",
    group="root",
    mode="644",
)
systemd.service(name="app service", service=f"{app}.service", running=True, enabled=True)
