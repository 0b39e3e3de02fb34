"""Demo data for `make run`: a demo site and one user per role, clearly labelled as demo."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from trial import services
from trial.audit import audit_context
from trial.models import Site, User
from trial.roles import Role

DEMO_SITE_CODE = "01"
DEMO_BACKUP_CODES = 5


@dataclass(frozen=True)
class DemoLogin:
    role: Role
    email: str
    password: str
    backup_codes: list[str]
    totp_uri: str


DEMO_USERS = (
    (Role.COORDINATOR, "coordinator@demo.example.org", "Casey Coordinator (demo)"),
    (Role.INVESTIGATOR, "investigator@demo.example.org", "Ira Investigator (demo)"),
    (Role.MONITOR, "monitor@demo.example.org", "Morgan Monitor (demo)"),
    (Role.DATA_MANAGER, "datamanager@demo.example.org", "Dana Data-Manager (demo)"),
    (Role.ADMINISTRATOR, "admin@demo.example.org", "Alex Administrator (demo)"),
)


def demo_password(role: Role) -> str:
    return f"demo-{role.value.replace('_', '-')}-2026"


def _backup_codes(user: User) -> list[str]:
    device, _ = StaticDevice.objects.get_or_create(
        user=user, name="Backup codes", defaults={"confirmed": True}
    )
    codes = list(device.token_set.values_list("token", flat=True))
    for _ in range(DEMO_BACKUP_CODES - len(codes)):
        codes.append(StaticToken.objects.create(device=device, token=StaticToken.random_token()).token)
    return codes


@transaction.atomic
def demo_seed() -> list[DemoLogin]:
    """Create (or top up) the demo site and users. Idempotent: running it again changes nothing
    but the backup codes that were used up."""
    with audit_context(reason="demo data (make run)"):
        site = Site.objects.filter(code=DEMO_SITE_CODE).first() or services.site_create(
            actor=None,
            code=DEMO_SITE_CODE,
            name="Demo University Hospital (DEMO DATA)",
            time_zone="America/New_York",
            contact_email="research-office@demo.example.org",
            contact_phone="+1 555 0100",
            reason="demo data (make run)",
        )
        logins = []
        for role, email, full_name in DEMO_USERS:
            user = User.objects.filter(email=email).first() or services.user_create(
                actor=None,
                email=email,
                full_name=full_name,
                password=demo_password(role),
                roles=[role],
                sites=[site],
                reason="demo user (make run)",
            )
            totp, _ = TOTPDevice.objects.get_or_create(
                user=user, name="Authenticator app", defaults={"confirmed": True}
            )
            logins.append(DemoLogin(role, email, demo_password(role), _backup_codes(user), totp.config_url))
    return logins
