"""Rules of Tagana volunteers, with no I/O."""

from __future__ import annotations

RANKS = ("muda", "madya", "utama")  # Tagana Muda, Madya, Utama
SKILLS = ("evacuation", "search_rescue", "public_kitchen", "shelter_management", "logistics", "first_aid", "psychosocial",
          "water_sanitation", "communication", "assessment", "driving")
ROLES = ("coordinator", "evacuation", "search_rescue", "public_kitchen", "shelter_management", "logistics", "first_aid",
         "psychosocial", "assessment", "other")
