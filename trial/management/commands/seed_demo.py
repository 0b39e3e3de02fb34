"""Load the demo data (idempotent) and print the demo logins with their backup codes."""

from django.core.management.base import BaseCommand

from trial.demo import demo_seed


class Command(BaseCommand):
    help = "Create the demo site and one user per role (idempotent); print logins and backup codes."

    def handle(self, *args, **options):
        logins = demo_seed()
        self.stdout.write(self.style.SUCCESS("Demo logins (DEMO DATA - never use on a real site):"))
        for login in logins:
            self.stdout.write(f"  {login.role.label:<22} {login.email:<34} password: {login.password}")
            self.stdout.write(
                f"  {'':<22} second factor: one of the backup codes {' '.join(login.backup_codes)}"
            )
        self.stdout.write("Each backup code works once; run `make demo` again to top them up.")
