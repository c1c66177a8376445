"""Checks, through Home Assistant's own REST and WebSocket APIs, what Ferry's MQTT bridge
makes of a host: its device, update entity, connectivity sensor and summary entities, and
Install pressed in Home Assistant followed to the installed release. Run by
scripts/home-assistant-check with Home Assistant's own Python (it uses aiohttp from there).
"""

import argparse
import asyncio
import sys
import time

import aiohttp

ENTITY = "update.ferry_kitchen_pi_web"
SENSOR = "binary_sensor.ferry_kitchen_pi_agent"


class Failed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failed(what)
    print(f"ok: {what}")


async def wait_for(what, probe, timeout, every=0.5):
    """Calls `probe` until it returns something true, at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = await probe()
        except (aiohttp.ClientError, KeyError, ValueError) as e:
            last = e
        if last and not isinstance(last, Exception):
            return last
        await asyncio.sleep(every)
    raise Failed(f"{what}: not within {timeout} s (last: {last!r})")


async def main(args):
    base = args.ha.rstrip("/")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as s:

        async def up():
            async with s.get(f"{base}/api/onboarding") as r:
                return r.status == 200

        await wait_for("Home Assistant answering", up, 900, every=1)
        client_id = f"{base}/"
        async with s.post(
            f"{base}/api/onboarding/users",
            json={
                "client_id": client_id,
                "name": "Ferry",
                "username": "ferry",
                "password": "ferry-check-password",
                "language": "en",
            },
        ) as r:
            check(r.status == 200, f"onboarding user created ({r.status})")
            code = (await r.json())["auth_code"]
        async with s.post(
            f"{base}/auth/token",
            data={"grant_type": "authorization_code", "code": code, "client_id": client_id},
        ) as r:
            token = (await r.json())["access_token"]
        h = {"Authorization": f"Bearer {token}"}
        async with s.get(f"{base}/api/config", headers=h) as r:
            version = (await r.json())["version"]
        print(f"Home Assistant {version}")
        major, minor = (int(x) for x in version.split(".")[:2])

        # The MQTT integration, pointed at the test broker (as a person does in the UI).
        async with s.post(
            f"{base}/api/config/config_entries/flow",
            json={"handler": "mqtt", "show_advanced_options": False},
            headers=h,
        ) as r:
            flow = await r.json()
        for _ in range(5):
            if flow.get("type") != "form":
                break
            async with s.post(
                f"{base}/api/config/config_entries/flow/{flow['flow_id']}",
                json={"broker": "127.0.0.1", "port": args.broker_port},
                headers=h,
            ) as r:
                flow = await r.json()
        check(flow.get("type") == "create_entry", f"MQTT integration set up ({flow.get('type')})")

        async def state(entity):
            async with s.get(f"{base}/api/states/{entity}", headers=h) as r:
                return await r.json() if r.status == 200 else None

        async def web_ready():
            st = await state(ENTITY)
            if st and st["attributes"].get("latest_version") == "1.1.0":
                return st
            return None

        web = await wait_for(f"{ENTITY} with 1.1.0 available", web_ready, 120)
        a = web["attributes"]
        check(web["state"] == "on", f"{ENTITY} says an update is available ({web['state']})")
        check(a.get("installed_version") == "1.0.0", f"installed_version 1.0.0 ({a.get('installed_version')})")
        check("faster pages" in (a.get("release_summary") or ""), "release_summary from the release notes")
        check(a.get("release_url") == "https://example.org/web/1.1.0", "release_url from the release")
        check(a.get("entity_picture") == "https://example.org/web.png", "entity_picture from the icon URL")
        check(a.get("in_progress") in (False, None), "not in progress yet")

        async def sensor_on():
            st = await state(SENSOR)
            return st if st and st["state"] == "on" else None

        conn = await wait_for(f"{SENSOR} on", sensor_on, 60)
        check(conn["attributes"].get("device_class") == "connectivity", "connectivity sensor")

        async with s.post(
            f"{base}/api/template",
            json={"template": "{{ device_attr(device_id('%s'), 'name') }}" % ENTITY},
            headers=h,
        ) as r:
            name = await r.text()
        check(name == "Kitchen Pi", f"one device per host, named by its friendly name ({name!r})")

        # The entity registry: unique ids, and the summaries there but disabled.
        ws_url = base.replace("http://", "ws://") + "/api/websocket"
        async with s.ws_connect(ws_url) as ws:
            await ws.receive_json()
            await ws.send_json({"type": "auth", "access_token": token})
            check((await ws.receive_json())["type"] == "auth_ok", "WebSocket API")
            await ws.send_json({"id": 1, "type": "config/entity_registry/list"})
            reg = (await ws.receive_json())["result"]
        by_unique = {e["unique_id"]: e for e in reg if e["platform"] == "mqtt"}
        hh = args.tenant_id + "_" + args.host_id.replace("-", "")
        web_unique = f"ferry_{hh}_" + "web".encode().hex()
        check(by_unique.get(web_unique, {}).get("entity_id") == ENTITY, f"{web_unique} is {ENTITY}")
        check(by_unique.get(f"ferry_{hh}_conn", {}).get("entity_id") == SENSOR, f"ferry_{hh}_conn is {SENSOR}")
        for suffix in ("pkgs", "sec"):
            e = by_unique.get(f"ferry_{hh}_{suffix}")
            check(e is not None and e.get("disabled_by") == "integration",
                  f"ferry_{hh}_{suffix} registered, disabled by default ({e and e.get('entity_id')})")

        # Install, pressed in Home Assistant.
        pressed = time.monotonic()
        async with s.post(
            f"{base}/api/services/update/install", json={"entity_id": ENTITY}, headers=h
        ) as r:
            check(r.status == 200, f"update.install called ({r.status})")
        seen_in_progress = None
        deadline = pressed + 180
        while time.monotonic() < deadline:
            st = await state(ENTITY)
            at = st["attributes"] if st else {}
            if at.get("in_progress") is True and seen_in_progress is None:
                seen_in_progress = time.monotonic() - pressed
            if at.get("installed_version") == "1.1.0" and not at.get("in_progress"):
                break
            await asyncio.sleep(0.2)
        else:
            raise Failed("the install pressed in Home Assistant did not finish within 180 s")
        done = time.monotonic() - pressed
        if (major, minor) >= (2024, 11):
            check(seen_in_progress is not None,
                  f"in_progress shown {seen_in_progress:.1f} s after the press" if seen_in_progress else "in_progress shown")
        else:
            print(f"note: Home Assistant {version} reads in_progress from MQTT only from 2024.11 on")
        check(st["state"] == "off", f"installed 1.1.0, up to date, {done:.1f} s after the press")


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--ha", required=True)
    p.add_argument("--broker-port", type=int, required=True)
    p.add_argument("--host-id", required=True)
    p.add_argument("--tenant-id", required=True)
    try:
        asyncio.run(main(p.parse_args()))
    except Failed as e:
        print(f"FAILED: {e}", file=sys.stderr)
        sys.exit(1)
