"""Load the demo data (idempotent) and print the demo logins with their backup codes.

It lives in `participants` because it seeds both layers: `trial` (site, users) must not import
the apps above it, so the command that combines them sits here.
"""

from django.core.management.base import BaseCommand

from participants.demo import participants_demo_seed
from trial.demo import demo_seed


class Command(BaseCommand):
    help = (
        "Create the demo site, one user per role, a demo consent document and two screened people "
        "(idempotent); print logins and backup codes."
    )

    def handle(self, *args, **options):
        logins = demo_seed()
        screenings = participants_demo_seed()
        self.stdout.write(self.style.SUCCESS("Demo logins (DEMO DATA - never use on a real site):"))
        for login in logins:
            self.stdout.write(f"  {login.role.label:<22} {login.email:<34} password: {login.password}")
            self.stdout.write(
                f"  {'':<22} second factor: one of the backup codes {' '.join(login.backup_codes)}"
            )
        self.stdout.write("Each backup code works once; run `make demo` again to top them up.")
        self.stdout.write("Demo screening log (site 01):")
        for screening in screenings:
            enrolled = f" as {screening.study_id}" if screening.study_id else ""
            self.stdout.write(f"  {screening.screening_number}: {screening.outcome}{enrolled}")
