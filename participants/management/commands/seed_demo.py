"""Load the demo data (idempotent) and print the demo logins with their backup codes; with
`--participants N`, add N synthetic participants and everything recorded about them.

It lives in `participants` because it seeds both layers: `trial` (site, users) must not import
the apps above it, so the command that combines them sits here.
"""

import datetime as dt

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from participants.demo import participants_demo_seed
from trial.demo import demo_seed


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"--base-date: {exc}; use YYYY-MM-DD") from None


class Command(BaseCommand):
    help = (
        "Create the demo site, one user per role, a demo consent document and two screened people "
        "(idempotent); print logins and backup codes. With --participants N: also add N enrolled "
        "synthetic participants (about 1.3 N screenings), deterministic for --seed and --base-date, "
        "spread over the demo site and two synthetic sites: 1-6 lesions each, every protocol visit "
        "(past ones completed, some missed or late, future ones planned), ultrasound measurements "
        "and injections within the dose limits, questionnaires with scores, reminders, adverse "
        "events, queries, signatures and source data verification; all written with bulk inserts "
        "that the database's rules and audit triggers check. The database is the one DATABASE_URL names."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--participants",
            type=int,
            default=0,
            help="Number of enrolled synthetic participants to add (0: only the demo data).",
        )
        parser.add_argument("--seed", type=int, default=1, help="Random seed: same seed, same data.")
        parser.add_argument(
            "--base-date",
            type=_date,
            default=None,
            help="The 'today' of the synthetic data (YYYY-MM-DD; default: today, UTC). Fix it for "
            "identical data on another day.",
        )
        parser.add_argument(
            "--pending-reminders",
            type=int,
            default=0,
            help="Add this many more pending reminder rows (repeat reminders of open questionnaires), "
            "due over the 30 days after the base date, none due yet: for the reminder tick benchmark.",
        )
        parser.add_argument(
            "--if-absent",
            action="store_true",
            help="Add the synthetic participants only if this seed's are not here yet (so `make demo` "
            "can run again); without it a second run of one seed is refused.",
        )

    def handle(self, *args, **options):
        participants = options["participants"]
        if participants < 0 or options["pending_reminders"] < 0:
            raise CommandError("--participants and --pending-reminders cannot be negative.")
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
        if participants or options["pending_reminders"]:
            self._synthetic(participants, options)

    def _synthetic(self, participants: int, options) -> None:
        from trial.synthetic import synthetic_seed, synthetic_seeded  # the read side: imports every app

        if options["if_absent"] and synthetic_seeded(options["seed"]):
            self.stdout.write(f"Synthetic data of seed {options['seed']} is already here: nothing added.")
            return

        base_date = options["base_date"] or timezone.now().date()
        try:
            result = synthetic_seed(
                participants=participants,
                seed=options["seed"],
                base_date=base_date,
                pending_reminders=options["pending_reminders"],
                progress=lambda line: self.stdout.write(f"  {line}"),
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            self.style.SUCCESS(
                f"Synthetic data (seed {options['seed']}, base date {base_date}) in {result.seconds:.1f} s:"
            )
        )
        for label, count in sorted(result.rows.items()):
            self.stdout.write(f"  {label:<40} {count:>9}")
