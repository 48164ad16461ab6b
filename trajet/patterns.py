"""Sentence families of the generator, written as small grammars.

Syntax: `[a|b|c]` picks one option (options nest, `[|x]` makes x optional), `{filler}` expands a random
entry of FILLERS, `{prep:ROLE}` writes a place with its preposition, `{VIAS}` writes 0-3 stops
(`{VIAS:+}` at least one). Roles: D (DEPART), A (ARRIVEE), V1-V3 (VIA); X, Y, Z are places named in the
sentence that are not part of the trip (they get no label). `ROLE@st` asks for a named station.
Prepositions: `de` / `a` / `jusqua` contract with the article (du Mans, au Havre, d'Orléans);
`gde`/`ga`/`g`/`lag`/`depuis_gare` write "de la gare de X" etc. with only the city tagged;
`bare` writes the name alone; any other word is written as is (`pour`, `depuis`, `vers`, `via`,
`en_partant_de` -> "en partant de").

Sentences are written in lower case where a capital would start them: the generator capitalises most.
"""

from __future__ import annotations

# Towns that are also first names: used as people (never tagged) and, elsewhere, as real trip places.
AMBIGUOUS_TOWNS = (
    "Nancy", "Albert", "Lourdes", "Valence", "Margaux", "Alix", "Noé", "Salomé", "Valentine", "Yves",
    "Gilles", "Léon", "Mathieu", "Germaine", "Vienne", "Laval", "Orange", "Lisieux", "Roanne",
)
ALWAYS_SHARED = (
    "Le Havre", "Le Mans", "La Rochelle", "Les Sables-d'Olonne", "Le Creusot", "Le Puy-en-Velay",
    "L'Isle-Adam", "Saint-Étienne", "Aix-en-Provence", "Clermont-Ferrand", "Lyon Part-Dieu",
    "Marseille Saint-Charles", "Bordeaux Saint-Jean", "Lille Flandres", "Lille Europe", "Avignon TGV",
    "Toulouse Matabiau", "Nice Ville", "Strasbourg Ville", "Lyon Perrache", "Montpellier Saint-Roch",
    "Rennes Gare", "Nantes", "Aix-en-Provence TGV", "Valence TGV", "Marne-la-Vallée Chessy",
)

# Spellings people type for big cities, phonetic rather than keyboard slips (annotated as typed: [bordo]).
MISSPELLINGS: dict[str, tuple[str, ...]] = {
    "Bordeaux": ("Bordo", "Bordeau", "Bordaux"), "Marseille": ("Marseil", "Marseilles", "Marseile"),
    "Montpellier": ("Montpelier", "Montpellié", "Montpel"), "Strasbourg": ("Strasbour", "Strasbrg"),
    "Toulouse": ("Toulouze", "Toulous"), "Saint-Étienne": ("Sainté", "St-Etienne", "St Etienne"),
    "Lille": ("Lile",), "Perpignan": ("Perpi", "Perpigna"), "Besançon": ("Bezançon", "Besancon"),
    "Orléans": ("Orléan", "Orleans"), "Metz": ("Mets",), "Reims": ("Rheims", "Rheim"),
    "Paris": ("Paname", "Pari"), "Nantes": ("Nante",), "Rennes": ("Renne", "Rènes"), "Grenoble": ("Grenobl",),
    "Nice": ("Nisse",), "Lyon": ("Lion", "Lyonn"), "Dijon": ("Dijonn",), "Mulhouse": ("Mulouse",),
    "Clermont-Ferrand": ("Clermont", "Clermont Ferrant"), "Aix-en-Provence": ("Aix", "Aix en Provence"),
    "Angoulême": ("Angoulem",), "Châteauroux": ("Chateauroux", "Châteauroux"), "Quimper": ("Kemper",),
}

PEOPLE = (
    "Florence", "Nancy", "Albert", "Lourdes", "Valence", "Margaux", "Alix", "Noé", "Salomé", "Valentine",
    "Yves", "Gilles", "Léon", "Mathieu", "Germaine", "Florence", "Nancy", "Albert",
    "Marie", "Julie", "Thomas", "Camille", "Lucas", "Léa", "Hugo", "Sophie", "Pierre", "Nicolas", "Chloé",
    "Emma", "Louis", "Jeanne", "Paul", "Inès", "Karim", "Fatou",
)
SURNAMES = ("Martin", "Dupont", "Laval", "Lefèvre", "Moreau", "Roanne", "Vienne", "Girard", "Nancy", "Bernard")

CLUBS = (
    "l'Olympique de Marseille", "l'OM", "le PSG", "le Paris Saint-Germain", "l'OL", "l'Olympique lyonnais",
    "le FC Nantes", "le Stade rennais", "le RC Lens", "l'AS Saint-Étienne", "le Stade de Reims",
    "le Racing Club de Strasbourg", "les Girondins de Bordeaux", "le Stade toulousain", "le LOSC",
    "l'OGC Nice", "le Montpellier HSC", "le RC Toulon", "le Stade brestois", "l'AJ Auxerre",
    "le FC Lorient", "le SCO d'Angers", "le Havre AC", "le Toulouse FC", "l'ASM Clermont",
)
COMPANIES = ("Airbus", "Michelin", "Renault", "la SNCF", "Orange", "Decathlon", "Thales", "la mairie", "l'hôpital")

FILLERS: dict[str, list[str]] = {
    "greet": [
        "Bonjour", "Bonjour", "Bonjour", "Bonsoir", "Salut", "Hello", "Coucou", "Bonjour madame",
        "Bonjour monsieur", "Allô", "Hey", "Re-bonjour", "Bonjour à vous", "Bien le bonjour", "Yo",
    ],
    "greetp": ["{greet}, ", "{greet} ! ", "{greet}. ", "{greet} ", "{greet}! ", "{greet},"],
    "want": [
        "je voudrais", "je voudrais", "j'aimerais", "j'aimerais", "je souhaiterais", "je veux", "je souhaite",
        "je dois", "je compte", "il faudrait que je puisse", "je vais", "je pense", "j'envisage d'",
        "je prévois d'", "j'ai l'intention d'",
    ],
    # Followed by a noun ("un billet"), not a verb.
    "wantn": [
        "je voudrais", "je voudrais", "j'aimerais", "je souhaiterais", "je veux", "il me faut",
        "il me faudrait", "je cherche", "je recherche", "j'ai besoin d'", "je désire", "donnez-moi",
    ],
    "go": ["aller", "aller", "aller", "me rendre", "voyager", "partir", "aller en train", "descendre", "monter",
           "rentrer", "faire le trajet", "prendre le train"],
    "ticket": [
        "un billet", "un billet", "un train", "un aller simple", "un aller-retour", "deux billets",
        "des billets", "une place", "un trajet", "un TGV", "un TER", "trois places", "un billet de train",
        "un Ouigo", "2 billets", "un billet aller", "une réservation",
    ],
    "find": [
        "trouve-moi", "cherche-moi", "réserve-moi", "trouvez-moi", "réservez-moi", "prends-moi",
        "donne-moi", "propose-moi", "il me faut", "il me faudrait", "je cherche", "je recherche",
        "je voudrais réserver", "j'aimerais réserver", "je souhaite réserver", "je veux réserver",
        "je voudrais acheter", "j'aimerais avoir", "je voudrais", "merci de me trouver",
    ],
    "day": ["lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"],
    "month": ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre",
              "octobre", "novembre", "décembre"],
    "dnum": [str(d) for d in range(1, 32)] + ["1er", "2", "3", "10", "15", "20"],
    "mnum": ["01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12", "3", "5", "6", "9"],
    "h": [str(h) for h in range(5, 24)] + ["7", "8", "8", "9", "17", "18"],
    "mm": ["00", "05", "10", "15", "20", "30", "30", "45", "50"],
    "nw": ["deux", "trois", "quatre", "cinq", "2", "3", "4"],
    "date": [
        "demain", "demain", "aujourd'hui", "ce soir", "cet après-midi", "après-demain", "demain matin",
        "demain soir", "ce week-end", "le week-end prochain", "{day}", "{day} prochain", "{day} matin",
        "{day} soir", "ce {day}", "le {dnum} {month}", "le {dnum} {month}", "le {dnum}/{mnum}",
        "{day} {dnum} {month}", "le {dnum}", "la semaine prochaine", "début {month}", "fin {month}",
        "pendant les vacances de [Noël|la Toussaint|février|Pâques|printemps]", "dans deux semaines",
        "dans 3 jours", "le {dnum} {month} 2026", "le {dnum}/{mnum}/2026", "{day} {dnum}", "le {day} {dnum}",
        "dès que possible", "au plus vite", "cette semaine", "mi-{month}", "le {dnum}-{mnum}",
    ],
    "time": [
        "à {h}h", "à {h}h{mm}", "vers {h}h", "vers {h} h", "avant {h}h", "après {h}h", "à {h} heures",
        "vers midi", "en fin de matinée", "en début d'après-midi", "en fin de journée", "tôt le matin",
        "dans la matinée", "dans la soirée", "le matin", "l'après-midi", "le soir", "à {h}:{mm}",
        "pour {h}h{mm}", "entre {h}h et {h}h", "vers {h}h{mm}", "à {h}h pile", "avant midi",
    ],
    "pax": [
        "pour 2 adultes", "pour deux personnes", "pour {nw} personnes", "pour moi et ma femme",
        "pour moi et mon mari", "avec mes {nw} enfants", "avec mon fils", "pour une personne",
        "pour 2 adultes et 1 enfant", "pour un adulte et deux enfants", "avec un bébé", "avec ma copine",
        "en famille", "avec mon chien", "avec mon vélo", "pour {nw} adultes", "pour un senior",
        "avec une poussette", "pour 1 adulte", "pour nous deux",
    ],
    "class": [
        "en première classe", "en 1ère classe", "en première", "en seconde", "en seconde classe", "en 2nde",
        "en 2e classe", "en TGV", "en TER", "en Ouigo", "en TGV INOUI", "en Intercités", "en train de nuit",
        "le moins cher possible", "pas trop cher", "au meilleur prix", "avec la carte Avantage",
        "avec ma carte jeune", "côté fenêtre", "en aller simple", "en aller-retour", "en 1re",
        "avec la carte Liberté", "en classe Business Première", "place couloir", "en voiture calme",
        "par le TGV de {h}h{mm}", "avec le train n° 8{mm}{h}", "le TER de {h}h{mm}", "voiture 12 place 45",
    ],
    # What follows the trip: dates, hours, passengers, classes. Often empty, often several.
    "tail": [
        "", "", "", "", "", "", "", "", " {date}", " {date}", " {date}", " {date} {time}", " {time}",
        " {pax}", " {class}", " {date} {pax}", " {date}, {class}", " {date} {time} {pax}", " {date} {class}",
        ", {date}", " {pax} {date}", " {date} [ou|voire] {date}", " {time} {date}",
    ],
    # How a request ends: nothing, a full stop, politeness, a smiley... (NOTES.md: vary the endings).
    "end": [
        "", "", "", "", "", "", "", "", "", "", "", "", "", "", "", "", ".", ".", ".", ".", ".", ".", " !", "!",
        " svp", ", merci",
        ". Merci", " stp", " s'il vous plaît", ", merci d'avance", "...", " :)", " merci !",
        ", s'il vous plaît.", ". Merci beaucoup !", " please", ". Cordialement.", " ?", ", c'est possible ?",
        " merci.", "!!", " ?",
    ],
    "qend": [" ?", " ?", "?", "?", "", " ? Merci", "??", " svp ?", " ? merci d'avance", ", svp ?", " ?!"],
    "person": list(PEOPLE),
    "person_m": ["Albert", "Yves", "Gilles", "Léon", "Mathieu", "Noé", "Alix", "Thomas", "Lucas", "Hugo",
                 "Pierre", "Nicolas", "Louis", "Paul", "Karim", "Albert", "Mathieu"],
    "person_f": ["Florence", "Nancy", "Lourdes", "Valence", "Margaux", "Salomé", "Valentine", "Germaine",
                 "Marie", "Julie", "Camille", "Léa", "Sophie", "Chloé", "Emma", "Jeanne", "Inès", "Fatou",
                 "Florence", "Nancy"],
    "surname": list(SURNAMES),
    "club": list(CLUBS),
    "company": list(COMPANIES),
    "de_club": [
        "de l'OM", "du PSG", "du FC Nantes", "du Stade rennais", "des Girondins de Bordeaux", "de l'OL",
        "du RC Lens", "de l'AS Saint-Étienne", "du Stade toulousain", "de l'OGC Nice", "du LOSC",
        "du Racing Club de Strasbourg", "du Stade de Reims",
    ],
    "chez": [
        "ma sœur", "ma soeur", "mes parents", "ma grand-mère", "un ami", "des amis", "mon frère",
        "ma tante", "mon oncle", "mes cousins", "ma copine", "mon copain", "ma fille", "mon fils",
        "{person}",
    ],
    "pol": ["s'il vous plaît", "svp", "stp", "s'il te plaît", "merci", "merci beaucoup"],
}

# Stops. Each option is a grammar for 1, 2 or 3 stops.
VIA_FORMS: dict[int, list[str]] = {
    1: [
        " via {V1}", " via {V1}", " en passant par {V1}", " en passant par {V1}", " par {V1}",
        " avec un arrêt {a:V1}", " avec un changement {a:V1}", " avec une correspondance {a:V1}",
        " avec une escale {a:V1}", ", via {V1},", " avec correspondance {a:V1}", " en faisant étape {a:V1}",
        " avec un stop {a:V1}", " en m'arrêtant {a:V1}", ", en passant par {V1},", " et un arrêt {a:V1}",
        " avec changement {a:V1}", " en passant {par:V1}",
    ],
    2: [
        " via {V1} et {V2}", " via {V1} puis {V2}", " en passant par {V1} et {V2}",
        " en passant par {V1} puis par {V2}", " avec des arrêts {a:V1} et {a:V2}",
        " avec un changement {a:V1} et un autre {a:V2}", " par {V1} et {V2}", ", via {V1}, {V2},",
        " avec deux correspondances, {a:V1} et {a:V2}", " via {V1} et via {V2}", " en passant par {V1}, puis {V2}",
        " avec une escale {a:V1} puis {a:V2}",
    ],
    3: [
        " via {V1}, {V2} et {V3}", " en passant par {V1}, {V2} puis {V3}",
        " avec des arrêts {a:V1}, {a:V2} et {a:V3}", " par {V1}, {V2} et {V3}", " via {V1}, {V2}, {V3}",
        " en passant par {V1}, par {V2} et par {V3}", " avec des étapes {a:V1}, {a:V2} et {a:V3}",
    ],
}

# (name, group, templates, weight, style). Groups feed `trajet data stats` and the per-group evaluation.
FAMILIES: list[tuple] = [
    # ------------------------------------------------------------------ plain requests, politeness
    ("want_de_a", "standard", ("{want} {go} {de:D} {a:A}{VIAS}{tail}{end}",), 3.0),
    ("greet_want_de_a", "polite", ("{greetp}{want} {go} {de:D} {a:A}{VIAS}{tail}{end}",), 2.5),
    ("billet_conditionnel", "polite", (
        "[je voudrais|j'aimerais|je souhaiterais|je désirerais] {ticket} {de:D} {a:A}{VIAS}{tail}[, {pol}| {pol}|]{end}",
    ), 2.0),
    ("pouvez_vous", "question", (
        "[pourriez-vous|pouvez-vous|est-ce que vous pouvez|vous pouvez|serait-il possible de] me [trouver|réserver|proposer] {ticket} {de:D} {a:A}{VIAS}{tail}{qend}",
    ), 1.5),
    ("tu_peux", "question", (
        "[tu peux|tu pourrais|peux-tu|est-ce que tu peux|tu me] [me trouver|me prendre|me réserver|me booker|trouver] {ticket} {de:D} {a:A}{VIAS}{tail}{qend}",
    ), 1.2),
    ("imperative_find", "standard", ("{find} {ticket} {de:D} {a:A}{VIAS}{tail}{end}",), 2.0),
    ("besoin", "standard", (
        "[j'ai besoin d'un billet|j'ai besoin d'un train|j'ai besoin d'un aller simple|j'ai besoin de deux billets|il me faut un billet|il me faudrait un train] {de:D} {a:A}{VIAS}{tail}{end}",
    ), 1.2),
    ("je_cherche_pour_aller", "standard", (
        "[je cherche|je recherche] [un train|un billet|un trajet|une solution|un moyen|le meilleur trajet] pour [aller|me rendre|voyager] {de:D} {a:A}{VIAS}{tail}{end}",
    ), 1.2),
    ("nous_voulons", "standard", (
        "[nous voulons|nous voudrions|nous devons|nous souhaitons|nous aimerions] [aller|nous rendre|voyager|partir] {de:D} {a:A}{VIAS}{tail}{end}",
    ), 1.0),
    ("on_veut", "sms", (
        "[on veut|on voudrait|on doit|on aimerait|on va] [aller|se rendre|partir|descendre] {de:D} {a:A}{VIAS}{tail}{end}",
    ), 1.0),
    ("je_pars_de_vers", "standard", (
        "je pars {de:D} [{pour:A}|{a:A}|{vers:A}|{direction:A}|et je vais {a:A}|pour aller {a:A}]{VIAS}{tail}{end}",
    ), 1.5),
    ("depuis_jusqua", "standard", ("{want} {go} {depuis:D} {jusqua:A}{VIAS}{tail}{end}",), 1.2),
    ("horaires", "question", (
        "[quels sont les|c'est quoi les|je voudrais les|donne-moi les|je veux connaître les|tu as les|vous avez les] [horaires|horaires des trains|prochains départs|trains|prix|tarifs|correspondances] {de:D} {a:A}{VIAS}{tail}[{qend}|{end}]",
    ), 1.5),
    ("y_a_til", "question", (
        "[y a-t-il|est-ce qu'il y a|il y a|y aurait-il|existe-t-il|ya] [un train|des trains|un TGV|un direct|des places|un bus|un car|encore de la place dans un train] {de:D} {a:A}{VIAS}{tail}{qend}",
    ), 1.5),
    ("quelle_heure", "question", (
        "à quelle heure [part|passe] le [prochain|premier|dernier] train {de:D} {pour:A}{tail}{qend}",
        "à quelle heure [part|arrive] le [prochain|premier|dernier] [train|TGV|TER] {de:D} {a:A}{tail}{qend}",
    ), 1.2),
    ("combien", "question", (
        "[combien coûte un billet|combien coûte un aller simple|combien coûte un aller-retour|combien ça coûte|ça coûte combien|combien ça coute pour aller|c'est combien] {de:D} {a:A}{VIAS}{tail}{qend}",
        "combien de temps [faut-il|il faut|ça prend|dure le trajet] pour aller {de:D} {a:A}{VIAS}{tail}{qend}",
    ), 1.2),
    ("comment_aller", "question", (
        "comment [aller|me rendre|je fais pour aller|faire pour aller|puis-je aller|on fait pour aller|voyager] {de:D} {a:A}{VIAS}{tail}{qend}",
    ), 1.2),
    ("quel_train", "question", (
        "quel train [prendre|je dois prendre|dois-je prendre|me conseillez-vous] pour aller {de:D} {a:A}{VIAS}{tail}{qend}",
    ), 1.0),
    ("reserver_trajet", "standard", (
        "je [voudrais|veux|souhaite|aimerais] réserver [un trajet|un voyage|le train|un siège|une place] {de:D} {a:A}{VIAS}{tail}{end}",
    ), 1.2),
    ("aller_simple", "standard", (
        "[un|1] aller simple {de:D} {a:A}{VIAS}{tail}[, {pol}| {pol}|]{end}",
        "[un|1|deux] aller-retour {de:D} {a:A}{tail}[, {pol}| {pol}|]{end}",
    ), 1.2),
    ("aller_retour_bare", "terse", (
        "[un aller-retour|deux allers-retours|1 A/R|un AR|un aller simple|2 billets|deux billets|1 billet|un billet] {D} {A}{tail}{end}",
    ), 1.0),
    ("voyage_prevu", "standard", (
        "[je prévois|je compte faire|j'organise|je prépare|je planifie] un voyage {de:D} {a:A}{VIAS}{tail}{end}",
    ), 0.8),
    ("partir_de_pour", "standard", (
        "je [voudrais|souhaite|veux|vais|dois] partir {de:D} {pour:A}{VIAS}{tail}{end}",
        "je [voudrais|souhaite|veux|vais|dois] partir {de:D} {date} {pour:A}{VIAS}{end}",
    ), 1.2),
    ("destination_de", "standard", (
        "[un train|un billet|des trains|le prochain train] [au départ {de:D}|{depuis:D}|en partance {de:D}] à destination {de:A}{VIAS}{tail}{end}",
        "[un billet|un train|une place] à destination {de:A} [au départ {de:D}|{depuis:D}|en partant {de:D}]{tail}{end}",
        "[quels trains vont|y a-t-il des trains] {de:D} à destination {de:A}{tail}{qend}",
    ), 1.0),
    ("mv_puis", "multi_via", (
        "{want} {go} {de:D} {a:V1} puis {a:A}{tail}{end}",
        "je pars {de:D}, je passe par {V1}[ et {V2}|] puis je vais {a:A}{tail}{end}",
        "{de:D} {a:V1}, puis {a:V2}, et enfin {a:A}{tail}{end}",
        "{want} {go} {de:D} {a:V1}, ensuite {a:A}{tail}{end}",
        "{want} {go} {de:D} {a:V1}[,|] puis {a:V2} puis {a:A}{tail}{end}",
        "[d'abord|premier arrêt] {V1}, [puis|ensuite] {V2}, [et enfin|et pour finir|terminus] {A}, [au départ {de:D}|en partant {de:D}]{end}",
    ), 1.8),
    ("depart_arrivee", "form", (
        "départ {de:D} {time}, arrivée {a:A} [{time}|avant {h}h]{end}",
        "départ {de:D}[, | et |; | - ]arrivée {a:A}{VIAS}{tail}{end}",
        "départ {D}[, | et |; ]arrivée {A}{tail}{end}",
    ), 1.0),
    ("form_fields", "form", (
        "départ : {D} / arrivée : {A}[ / date : {date}|]",
        "départ: {D}, arrivée: {A}[, date: {date}|][, passagers: {nw}|]",
        "de : {D}[ | - ]à : {A}[ | - le {dnum}/{mnum}|]",
        "origine : {D}[ ; | - ]destination : {A}",
        "gare de départ : {D}[ | / ]gare d'arrivée : {A}",
    ), 0.8),
    ("question_possible", "question", (
        "[est-ce possible|est-il possible|c'est possible] [d'aller|de voyager|de partir] {de:D} {a:A}{VIAS}{tail}{qend}",
    ), 1.0),
    ("puis_je", "question", ("[puis-je|je peux|est-ce que je peux|peut-on|on peut] [aller|voyager|partir] {de:D} {a:A}{VIAS}{tail}{qend}",), 0.8),
    ("chez_arrivee", "standard", (
        "je [vais|descends|monte|pars] chez {chez} {a:A}{tail}[, {depuis:D}|, je pars {de:D}|, départ {de:D}|]{end}",
        "je [voudrais|dois|veux] aller chez {chez} {a:A} {depuis:D}{tail}{end}",
    ), 1.2),
    ("rentrer", "standard", (
        "je [rentre|dois rentrer|veux rentrer|voudrais rentrer] {a:A} {date} {depuis:D}{end}",
        "[retour|je rentre] {a:A} {depuis:D}{tail}{end}",
    ), 0.8),
    ("date_first", "standard", (
        "{date}[,|] {want} {go} {de:D} {a:A}{VIAS}{end}",
        "{date} {time}[,|] [train|départ] {de:D} {pour:A}{end}",
    ), 1.2),
    ("date_middle", "long", (
        "je pars {de:D} {date} {time} [pour|vers|direction] [{A}|{bare:A}]{end}",
        "{want} partir {date} {de:D} et arriver {a:A} [avant|vers|pour] {h}h{end}",
    ), 1.0),
    ("two_sentences", "chatbot", (
        "{greet}. [Je cherche un train.|J'ai une question.|J'ai besoin d'aide.] Départ {de:D}, arrivée {a:A}{tail}. [Merci.|Merci !|]",
        "[Je voudrais voyager|J'ai un voyage à faire|Je dois me déplacer] {date}. Je pars {de:D} et je vais {a:A}{VIAS}.",
    ), 1.0),
    # ------------------------------------------------------------------ chatbot, voice, SMS
    ("voice_assistant", "voice", (
        "[ok google|Ok Google|dis Siri|Dis Siri|Alexa|Hey Google|OK Google|Siri][,|] [trouve-moi|réserve|cherche|donne-moi|montre-moi] [un train|un billet|les trains|les horaires|un itinéraire] {de:D} {a:A}{VIAS}{tail}",
    ), 1.2),
    ("voice_emmene", "arrival_only", (
        "[emmène-moi|amène-moi|itinéraire|direction|itinéraire en train|je veux aller|on va] {a:A}{tail}",
        "[ok google|dis Siri|Alexa][,|] [emmène-moi|itinéraire|on va] {a:A}{tail}",
    ), 1.0),
    ("voice_train_pour", "voice", (
        "[train|prochain train|prochains trains|horaires] {pour:A} {depuis:D}{tail}",
        "[train|prochain train|horaires trains] {de:D} {pour:A}{tail}",
    ), 1.0),
    ("sms_short", "sms", (
        "[jveux|je veux|jvx|jdois|je dois|jvais|faut que j'aille] [aller|partir|monter|descendre] {a:A} [dm1|demain|ce soir|ce we|auj|] [stp|svp|]",
        "[jveux|jdois|jvais] [partir|aller] {de:D} {a:A} [dm1|demain|ce soir|ce we|] [stp|svp|]",
    ), 1.2, "sms"),
    ("sms_billet", "sms", (
        "[slt|salut|cc|coucou|yo|hello] [tu peux|tu px|tu pourrais|tu pe] me prendre [un billet|1 billet|un train|1 aller simple|2 billets] {D} {A} [pr|pour] {date} [stp|svp|steuplé|merci|]",
        "[slt|cc|yo] un billet {D} {A} [pr|pour] {date} [stp|svp|] [:)|]",
    ), 1.2, "sms"),
    ("sms_besoin", "sms", (
        "[g besoin|j'ai besoin|jai besoin|il me faut] d'un [train|billet|aller simple] {de:D} {a:A} [pr|pour] {date}[ ...| !|]",
        "[dispo|dispos] des trains {de:D} {a:A} {date} [?|??|]",
    ), 1.0, "sms"),
    ("chatbot_full", "chatbot", (
        "Bonjour, j'aimerais réserver un billet de train {de:D} {a:A}{VIAS} pour {date}[ {time}|]. Merci !",
        "Bonjour ! Je souhaiterais {ticket} {de:D} {a:A}{VIAS}, départ {date}[ {time}|]. [Merci d'avance.|Merci.|Cordialement.]",
    ), 1.2),
    ("chatbot_need", "chatbot", (
        "{greet}, j'ai besoin de [me rendre|voyager|partir|descendre] {de:D} {a:A} {date}. [Vous pouvez m'aider ?|Qu'avez-vous ?|Quelles sont les options ?|Que me proposez-vous ?|Merci]",
    ), 1.0),
    # ------------------------------------------------------------------ long requests
    ("long_request", "long", (
        "{greetp}je souhaiterais réserver [deux allers-retours|un aller simple|trois billets|des billets|deux places|un aller-retour] {de:D} {a:A}{VIAS}, départ {date} {time}, {class}[, retour {date}|, et le retour {date} en fin de journée|][. Merci d'avance|. Merci|, merci|]{end}",
        "{greetp}je voudrais partir {de:D} {date} {time}{VIAS} pour arriver {a:A} [avant|vers] {h}h, {pax}, {class}{end}",
    ), 1.5),
    ("long_context", "long", (
        "[pour mon travail|pour un rendez-vous médical|pour le mariage de ma cousine|pour les vacances|pour un séminaire|pour un entretien d'embauche|pour l'anniversaire de ma mère], je dois [aller|me rendre] {a:A} {date}. Je partirai {de:D}{VIAS}[ {time}|]. [Pouvez-vous me proposer un train ?|Qu'est-ce que vous avez ?|Merci de me proposer des horaires.|]",
    ), 1.2),
    ("long_family", "long", (
        "nous sommes [deux adultes et deux enfants|trois|une famille de cinq|4 adultes|un groupe de 10] et nous voulons aller {de:D} {a:A}{VIAS} {date}[, de préférence {time}|][, {class}|]{end}",
    ), 1.0),
    ("long_constraints", "long", (
        "{want} {go} {de:D} {a:A}{VIAS} {date}, [idéalement|si possible|de préférence] {time}, {pax}, {class}, [avec|sans] [bagages|vélo|animal]{end}",
        "[il me faudrait|je cherche] {ticket} {de:D} {a:A} {date} [en partant|départ] {time}, [retour|et retour] {date} {time}{end}",
    ), 1.2),
    # A return leg names the trip's towns again: the request is the outward trip, the return adds no entity.
    ("long_return", "long", (
        "{want} {go} {de:D} {a:A}{VIAS} {date} {time}, et [le retour|revenir|rentrer] {de:A!} {a:D!} {date}[ en fin de journée| le soir|]{end}",
        "{greetp}[un aller|l'aller] {de:D} {a:A} {date} {time} et [un retour|le retour] {de:A!} {a:D!} {date}, {pax}{end}",
        "{find} {ticket} {de:D} {a:A} {date}, [retour|et retour|avec un retour] {depuis:A!} {date} {time}[, {class}|]{end}",
    ), 1.2),
    # Several sentences: who is writing and why (with places that are not the trip), then the trip, then details.
    ("long_story", "long", (
        "{greetp}je m'appelle {person} et j'habite {a:X}. [Je dois|Il faut que je|Je vais] [aller|me rendre] {a:A} {date} [pour le travail|pour voir ma famille|pour un concert|pour un entretien]. Je partirai {de:D}{VIAS}[ {time}|]. Ce sera {pax}, {class}.[ Merci d'avance !| Bonne journée.| Merci.|]",
        "[la dernière fois|l'an dernier|le mois dernier] [j'ai pris le train|je suis allé] {de:X} {a:Y} et [c'était long|tout s'est bien passé|j'ai eu du retard]. Cette fois-ci {want} {go} {de:D} {a:A}{VIAS} {date} {time}{end}",
        "{greetp}[petite question|j'ai une question] : [mon fils|ma fille|ma mère] [habite|vit] {a:X} mais [on se retrouve|nous nous retrouvons] {a:A} {date}. {find} {ticket} {depuis:D}{VIAS}, {class}.[ Merci beaucoup| Merci d'avance| Bonne journée|]{end}",
    ), 1.2),
    ("long_sms", "sms", (
        "[slt|coucou|yo|bjr] [jsuis|je suis] {a:X} [en ce moment|chez mes parents|pr le taf] mais [faut que je|jdois|je dois] [aller|rentrer|descendre] {a:A} {date} [en partant|au départ] {de:D}{VIAS} [pr|pour] [2|deux|3|1] [pers|personnes|adultes] [stp|svp|merci|] [:)|!!|]",
        "[bjr|slt] [jvoudrais|je voudrais|jvx] [un billet|1 billet|2 billets] {de:D} {a:A}{VIAS} {date} [vers|à] {h}h [en 2nde|en 1ere|pas cher|] [c possible|c'est possible|possible] [?|stp ?|]",
    ), 1.0, "sms"),
    # ------------------------------------------------------------------ terse forms
    ("terse_space", "terse", ("{D} {A}{tail}", "{D} {A}{tail}{end}"), 1.5),
    ("terse_dash", "terse", ("{D} - {A}{tail}{end}", "{D} – {A}{tail}{end}", "{D} -- {A}{tail}"), 1.5),
    ("terse_arrow", "terse", (
        "{D}[->|-> | -> | => | > |→| → |>| >> ]{A}{tail}",
        "{D}[->| -> | → ]{A}[,|] {date}",
    ), 1.5),
    ("terse_entre", "terse", (
        "[entre|trajet entre|train entre|billets entre|horaires entre|un train entre] {D} et {A}{VIAS}{tail}{end}",
        "je cherche un [train|trajet] entre {D} et {A}{tail}{end}",
    ), 1.2),
    ("terse_keyword", "terse", (
        "[train|billet|trajet|TGV|TER|horaires|aller simple|A/R|AR|billets|Ouigo] {D} {A}{tail}{end}",
        "[train|billet|trajet] {D} - {A}{tail}{end}",
    ), 1.5),
    ("terse_via", "terse", (
        "{D} - {A} [par|via] {V1}{tail}{end}",
        "{D} {A} via {V1}[ et {V2}|]{tail}",
        "{D} -> {A} [via|par] {V1}{tail}",
    ), 1.2),
    ("terse_de_a", "terse", ("{de:D} {a:A}{tail}{end}", "{de:D} {jusqua:A}{tail}{end}"), 1.5),
    ("terse_a", "terse", ("{D} à {A}{tail}{end}", "{D} pour {A}{tail}"), 0.8),
    ("terse_colon", "terse", (
        "[trajet|itinéraire|voyage|billet|réservation] : {D} [→|->|-|>] {A}{tail}",
        "[trajet|itinéraire] : {de:D} {a:A}{tail}",
    ), 0.8),
    ("terse_slash", "terse", ("{D} / {A}{tail}", "{D}/{A} {date}"), 0.6),
    ("terse_chain", "multi_via", (
        "{D} -> {V1} -> {A}{tail}", "{D} - {V1} - {A}{tail}", "{D} > {V1} > {V2} > {A}{tail}",
        "{D} → {V1} → {V2} → {A}", "{D} → {V1} → {V2} → {V3} → {A}{tail}", "{D}, {V1}, {V2}, {A}{tail}",
    ), 1.5),
    ("terse_date_first", "terse", ("{date} {D} {A}", "{date} : {D} - {A}", "{date} {time} {D} -> {A}"), 0.8),
    # ------------------------------------------------------------------ arrival first
    ("af_pour_depuis", "arrival_first", (
        "[un billet|un train|un aller simple|des billets|une place] {pour:A} [{depuis:D}|au départ {de:D}|en partant {de:D}|en provenance {de:D}]{tail}{end}",
    ), 1.5),
    ("af_aller_en_partant", "arrival_first", (
        "{want} [aller|me rendre|voyager|rentrer|descendre|monter] {a:A} en partant {de:D}{VIAS}{tail}{end}",
        "{want} [aller|me rendre|voyager|rentrer|descendre|monter] {a:A} {depuis:D}{VIAS}{tail}{end}",
    ), 1.8),
    ("af_destination", "arrival_first", (
        "[destination|direction] {A}[, | ]départ {de:D}{tail}{end}",
        "[destination|direction] : {A}[, | - ]départ : {D}{tail}",
    ), 1.0),
    ("af_rejoindre", "arrival_first", (
        "[comment|je voudrais|j'aimerais|je dois] rejoindre {bare:A} {depuis:D}{tail}{qend}",
    ), 1.0),
    ("af_arrivee_depart", "arrival_first", (
        "arrivée {a:A} [avant|vers|pour] {h}h, départ {de:D}{end}",
        "arrivée : {A}[, | - ]départ : {D}{tail}",
    ), 1.0),
    ("af_je_vais_je_pars", "arrival_first", ("je vais {a:A}[,|.| et] je pars {de:D}{tail}{end}",), 1.2),
    ("af_pour_aller", "arrival_first", (
        "pour aller {a:A} {depuis:D}[, quel train prendre|, vous avez quoi|, c'est combien|, je fais comment|]{qend}",
        "pour aller {a:A} en partant {de:D}{VIAS}[, il faut combien de temps|, c'est combien|]{qend}",
    ), 1.0),
    ("af_terse", "arrival_first", ("{A} depuis {D}{tail}", "{A} au départ {de:D}{tail}{end}", "{A} en partant {de:D}{tail}"), 1.0),
    ("af_monter", "arrival_first", ("je [monte|descends|remonte] {a:A} {date} {depuis:D}{end}",), 0.8),
    ("af_doit_etre", "arrival_first", (
        "je dois être {a:A} {date} [avant|pour|vers] {h}h[,|.] je pars {de:D}{end}",
        "je dois arriver {a:A} [avant|vers|à] {h}h{mm}[, départ|, je pars|, en partant] {de:D}{end}",
    ), 1.0),
    # ------------------------------------------------------------------ arrival only
    ("ao_want", "arrival_only", ("{want} {go} {a:A}{VIAS}{tail}{end}",), 2.0),
    ("ao_billet_pour", "arrival_only", (
        "[un billet|un train|une place|un aller simple|deux billets|un aller-retour] {pour:A}{tail}[, {pol}| {pol}|]{end}",
    ), 1.5),
    ("ao_comment", "arrival_only", ("comment [aller|se rendre|je peux aller|faire pour aller|on va] {a:A}{tail}{qend}",), 1.0),
    ("ao_prochain", "arrival_only", (
        "[le prochain train|c'est quand le prochain train|quand part le prochain train|prochain départ|le dernier train] {pour:A}{tail}{qend}",
    ), 1.0),
    ("ao_rejoindre", "arrival_only", ("[j'aimerais|je dois|je voudrais] rejoindre {bare:A}{VIAS}{tail}{end}",), 0.8),
    ("ao_visit", "person", (
        "je vais [voir|rendre visite à] [ma mère|mes grands-parents|un ami|{person}|{person}] {a:A}{tail}{end}",
    ), 1.2),
    # ------------------------------------------------------------------ departure only
    ("do_trains_from", "departure_only", (
        "[quels trains partent|quels sont les trains qui partent|qu'est-ce qui part|quels sont les départs|quels sont les prochains départs] {de:D}{tail}{qend}",
    ), 1.0),
    ("do_je_pars", "departure_only", (
        "je pars {de:D} {date}[ {time}|][, vous avez quoi|, quelles sont les options|, quelles destinations|, où puis-je aller|]{end}",
    ), 1.0),
    ("do_quitter", "departure_only", ("[je veux|je dois|j'aimerais|il faut que je puisse] quitter {bare:D} {date}{end}",), 0.8),
    ("do_depart_de", "departure_only", ("[départ|départs|prochains départs|trains au départ] {de:D}{tail}{end}",), 0.8),
    ("do_au_depart", "departure_only", (
        "[un billet|des trains|un train] au départ {de:D}[ pour n'importe où| vers le sud| vers la mer| pas trop loin|]{tail}{end}",
    ), 0.8),
    # ------------------------------------------------------------------ stops
    ("mv_via_middle", "multi_via", ("{want} {go} {de:D}{VIAS:+} {jusqua:A}{tail}{end}", "{want} {go} {de:D}{VIAS:+} et [finir|terminer|arriver] {a:A}{tail}{end}"), 1.5),
    ("mv_en_passant_first", "multi_via", (
        "en passant par {V1}[ et {V2}|], {want} {go} {de:D} {a:A}{tail}{end}",
        "avec un arrêt {a:V1}, {want} {go} {de:D} {a:A}{tail}{end}",
    ), 1.0),
    ("mv_arrets", "multi_via", (
        "{de:D} {a:A} avec [des arrêts|des étapes|des haltes] {a:V1}[, {a:V2} et {a:V3}| et {a:V2}]{tail}{end}",
    ), 1.0),
    ("mv_etapes", "multi_via", (
        "[itinéraire|road trip en train|voyage|mon parcours] : {D}, {V1}[, {V2}|] puis {A}{end}",
        "je pars {de:D}, je m'arrête {a:V1}[ puis {a:V2}|] et je finis {a:A}{tail}{end}",
    ), 1.0),
    ("mv_correspondance", "multi_via", (
        "je [pars|voudrais partir|veux partir] {de:D} {pour:A} avec [une correspondance|un changement|une escale] {a:V1}{tail}{end}",
    ), 1.0),
    ("mv_stop_long", "multi_via", (
        "je voudrais faire {D} - {A} en m'arrêtant {a:V1}[ puis {a:V2}|] pour [voir de la famille|visiter|déjeuner|une nuit]{end}",
    ), 0.8),
    ("mv_want_vias", "multi_via", ("{want} {go} {de:D} {a:A}{VIAS:+}{tail}{end}", "{find} {ticket} {de:D} {a:A}{VIAS:+}{tail}{end}"), 2.0),
    ("mv_af_via", "multi_via", ("{want} {go} {a:A} {depuis:D}{VIAS:+}{tail}{end}",), 0.8),
    # ------------------------------------------------------------------ stations
    ("st_pair", "station", ("{want} {go} {de:D@st} {a:A@st}{VIAS}{tail}{end}", "{find} {ticket} {de:D@st} {a:A}{tail}{end}"), 1.5),
    ("st_terse", "station", ("{bare:D@st} - {bare:A@st}{tail}{end}", "{bare:D@st} {bare:A}{tail}", "{bare:D} -> {bare:A@st}{tail}"), 1.0),
    ("st_generic_gare", "station", (
        "je pars {gde:D} {pour:A}{tail}{end}",
        "{want} {go} {de:D} {ga:A}{tail}{end}",
        "départ {gde:D}, arrivée {a:A}{tail}{end}",
        "un train {depuis_gare:D} {jusqua:A}{tail}{end}",
        "[rendez-vous {ga:D}|départ {gde:D}|je serai {ga:D}] {date} [pour|direction] {bare:A}{end}",
        "{lag:D}[,|] {date}, [pour|direction] {bare:A}{end}",
    ), 1.2),
    ("st_arrive", "station", (
        "je dois arriver {a:A@st} [avant|vers] {h}h{mm}[,|.] je pars {de:D}{end}",
        "j'arrive {a:A@st} {date} {depuis:D}{tail}{end}",
    ), 1.0),
    ("st_paris_gare", "station", (
        "[train|billet|un billet|le prochain train] {de:D@st} {pour:A}{tail}{end}",
        "je [prends|voudrais prendre] le train {de:D@st} {pour:A}{VIAS}{tail}{end}",
    ), 1.0),
    # ------------------------------------------------------------------ people named like towns
    ("person_book_for", "person", (
        "[je voudrais|j'aimerais|je veux] réserver pour {person} [un billet|un aller simple|une place] {de:D} {a:A}{tail}{end}",
        "c'est pour {person}[ :|,] {D} - {A}{tail}{end}",
    ), 1.2),
    ("person_with", "person", ("je [pars|voyage|vais] avec {person} {de:D} {a:A}{tail}{end}", "{person} et moi [voulons|voudrions|devons] aller {de:D} {a:A}{tail}{end}"), 1.2),
    ("person_is_going", "person", (
        "{person_m} [doit aller|veut aller|va|part|doit se rendre] {a:A}{tail}[, il part {de:D}|], [peux-tu|pouvez-vous|tu peux] [lui|nous] trouver un train{qend}",
        "{person_f} [doit aller|veut aller|va|part|doit se rendre] {a:A}{tail}[, elle part {de:D}|], [peux-tu|pouvez-vous|tu peux] [lui|nous] trouver un train{qend}",
        "mon [fils|ami|collègue|cousin] {person_m} [doit aller|veut aller] {de:D} {a:A}{tail}{end}",
        "ma [fille|amie|collègue|cousine] {person_f} [doit aller|veut aller] {de:D} {a:A}{tail}{end}",
    ), 1.2),
    ("person_address", "person", (
        "[merci|bonjour|salut|coucou] {person}[,|!| !] {want} {go} {de:D} {a:A}{tail}{end}",
    ), 1.0),
    ("person_signed", "person", (
        "{wantn} un billet {de:D} {a:A}{tail}. [Cordialement|Merci|Bien à vous|Bonne journée], {person}[ {surname}|]",
        "[bonjour, ici|c'est] {person}[ {surname}|]. {want} {go} {de:D} {a:A}{tail}{end}",
    ), 1.0),
    # ------------------------------------------------------------------ distractor places
    ("dist_habite", "distractor", (
        "j'habite {a:X} mais {want} {go} {de:D} {a:A}{tail}{end}",
        "[j'habite|je vis|je réside|je suis basé|je loge|je travaille] {a:X}[ et|,|.] {want} {go} {a:A}{tail}{end}",
    ), 1.2),
    ("dist_ne", "distractor", (
        "[je suis né {a:X}|je suis née {a:X}|je suis originaire {de:X}|ma famille vient {de:X}|j'ai grandi {a:X}][,|] [mais|et] {want} {go} {de:D} {a:A}{tail}{end}",
    ), 1.0),
    ("dist_comme", "distractor", (
        "{want} {go} {a:A} {date}[, il paraît qu'il fait beau comme {a:X}|, une ville aussi belle que {X}|, c'est comme {a:X} mais en plus petit|, pas comme la dernière fois {a:X}]{end}",
        "[comme {a:X}|comme pour {X}|comme d'habitude], {wantn} un billet {de:D} {a:A}{tail}{end}",
    ), 1.0),
    ("dist_past", "distractor", (
        "[l'an dernier|la dernière fois|l'été dernier|il y a deux ans|hier] je suis allé {a:X}[,|.|;] [cette fois|maintenant|ce coup-ci|aujourd'hui] {want} {go} {de:D} {a:A}{tail}{end}",
        "après [mon séjour|mes vacances|une semaine] {a:X} le mois dernier, {want} [aller|partir] {de:D} {a:A} {date}{end}",
    ), 1.0),
    ("dist_club", "distractor", (
        "{want} {go} {a:A} {date} pour voir [le match de|jouer] {club}[, départ {de:D}|]{end}",
        "[fan|supporter|supportrice] {de_club}, je [vais|veux aller] {a:A} {date} {depuis:D}{end}",
    ), 1.0),
    ("dist_work", "distractor", (
        "je travaille chez {company}[ {a:X}|] et je dois aller {a:A} {date}[ {depuis:D}|]{end}",
        "[mon entreprise|ma boîte|mon employeur] [est|se trouve] {a:X} mais [mon rendez-vous|ma réunion|mon séminaire] est {a:A}, je pars {de:D} {date}{end}",
    ), 1.0),
    ("dist_family_lives", "distractor", (
        "[ma sœur|mon frère|ma mère|mon copain|ma meilleure amie] [habite|vit|travaille] {a:X}. [je pars|départ] {de:D} {date}[ pour aller la voir|]{end}",
        "[mes parents|mes enfants] [habitent|vivent] {a:X}, [mais|alors] {want} {go} {a:A} {depuis:D}{tail}{end}",
    ), 1.0),
    ("dist_weather", "distractor", (
        "[il fait trop froid|il pleut tout le temps|il fait gris|on s'ennuie] {a:X}, {want} {go} {a:A} {date}{end}",
        "[marre|ras le bol|j'en ai marre] {de:X}[,|!|.] {wantn} {ticket} {pour:A} {date}{end}",
    ), 0.8),
    ("dist_person_place", "distractor", (
        "{person} habite {a:X} et je [vais|veux aller] la voir, {find} {ticket} {de:D} {a:A}{tail}{end}",
        "je pars [avec|sans] {person} {de:D} {a:A}[, on s'est rencontrés {a:X}|, comme l'an dernier {a:X}]{end}",
    ), 0.8),
    # ------------------------------------------------------------------ no trip (no entity)
    ("nt_weather", "no_trip", ("quel temps fait-il {a:X} {date}{qend}", "[il fait beau|il pleut|il neige|il fait chaud] {a:X} {date}{qend}"), 1.0),
    ("nt_live", "no_trip", (
        "[j'habite|je vis|mon frère habite|ma sœur vit|mes parents habitent] {a:X} depuis [dix|deux|5|vingt] ans{end}",
        "je suis [né|née] {a:X} en 19[78|85|92|64]{end}",
    ), 1.0),
    ("nt_opinion", "no_trip", (
        "{X} est une [très belle|jolie|grande|petite|magnifique] ville{end}",
        "[j'adore|je déteste|j'aime bien|je ne connais pas] {X}{end}",
        "je préfère {X} à {Y}{end}",
        "{X} ou {Y}, [quelle ville est la plus grande|laquelle est la plus jolie|tu préfères laquelle]{qend}",
    ), 1.5),
    ("nt_info", "no_trip", (
        "combien [d'habitants|de gares] {a:X}{qend}",
        "[tu connais|vous connaissez] un bon restaurant {a:X}{qend}",
        "quelle est la spécialité [culinaire|locale] {de:X}{qend}",
        "c'est où {X}{qend}", "{X}, c'est dans quelle région{qend}",
        "je cherche un hôtel {a:X} pour {date}{end}",
        "[y a-t-il|est-ce qu'il y a] [des grèves|des travaux|des bouchons] {a:X} {date}{qend}",
    ), 1.5),
    ("nt_past_trip", "no_trip", (
        "[hier|la semaine dernière|l'an dernier|le mois dernier] [j'ai pris le train|je suis allé|on est allés|nous sommes partis] {de:X} {a:Y}[, c'était long|, super voyage|, quel retard|]{end}",
        "je [viens de rentrer|suis rentré] {de:X}[, quel voyage|, trop fatigué|]{end}",
        "mon train {de:X} avait [une heure|20 minutes] de retard [hier|la semaine dernière]{end}",
    ), 1.2),
    ("nt_station_info", "no_trip", (
        "la gare {de:X} [a-t-elle des consignes|est-elle accessible en fauteuil|ouvre à quelle heure|est fermée ce week-end]{qend}",
        "où [se trouve|est] le guichet {a:X}{qend}",
        "est-ce qu'il y a un parking à la gare {de:X}{qend}",
    ), 0.8),
    ("nt_club", "no_trip", (
        "[le match|le derby] {club} contre {club} c'est [ce soir|demain|quand]{qend}",
        "[allez|vive] {club} !",
        "{club} a gagné hier{end}",
    ), 0.8),
    ("nt_people", "no_trip", (
        "{person} et {person} habitent {a:X}{end}",
        "[dis à|appelle|préviens] {person} que je serai en retard{end}",
        "{person} [arrive|passe] ce soir à la maison{end}",
    ), 0.8),
    ("nt_service", "no_trip", (
        "[merci beaucoup|merci pour votre aide|super merci|parfait, merci] !",
        "[comment|où] [annuler|modifier|échanger] ma réservation{qend}",
        "est-ce que les animaux sont acceptés dans le train{qend}",
        "[je voudrais|j'aimerais] un remboursement pour mon billet {de:X}{end}",
        "[bonjour|salut], [vous êtes là|il y a quelqu'un]{qend}",
        "quels sont les tarifs de la carte Avantage{qend}",
    ), 1.0),
    ("nt_compare", "no_trip", (
        "[la ville|la cathédrale|le marché] {de:X} [est plus belle que|ressemble à] celle {de:Y}{end}",
        "{X} [est jumelée avec|est plus proche de la mer que] {Y}{end}",
    ), 0.8),
    # Sentences that look like requests (two towns, a time, a train) but ask for none: the status of a train,
    # a trip already made, where someone works or studies, what happens in a town.
    ("nt_train_status", "no_trip", (
        "le [TGV|TER|train|Ouigo|Intercités] {X} {Y} [de ce matin|de {h}h{mm}|d'hier soir|de {h}h] [est en retard|a été supprimé|est annulé|part de quel quai|a combien de retard]{qend}",
        "[pourquoi|est-ce que] le train {de:X} [de {h}h{mm}|de ce matin|] [est|a été] [supprimé|en retard|bloqué {a:Y}]{qend}",
        "[il y a|y a-t-il] [du retard|des perturbations|des travaux] sur la ligne {X} {Y} [aujourd'hui|ce week-end|]{qend}",
        "le {X}-{Y} de {h}h{mm} [est complet|roule aujourd'hui|est maintenu]{qend}",
    ), 1.2),
    ("nt_past_narrative", "no_trip", (
        "[parti|partie|je suis parti|je suis partie] {de:X} à {h}h, [arrivé|arrivée] {a:Y} à {h}h{mm}[, trop long|, nickel|, que de retard|]{end}",
        "[ce week-end|samedi dernier|hier] [j'étais|on était|nous étions] {a:X}[, c'était super|, il faisait beau|]{end}",
        "on a fait {X} {Y} en [3h|deux heures|une demi-journée] [la dernière fois|l'été dernier|en 2024]{end}",
        "mon [dernier|premier] voyage {de:X} {a:Y} [remonte à l'an dernier|était en 2019|s'est bien passé]{end}",
    ), 1.2),
    ("nt_work", "no_trip", (
        "je travaille [chez|pour] {company} {a:X}[ depuis {nw} ans|]{end}",
        "[l'usine|le siège|l'agence] {company} {de:X} [ferme|recrute|déménage {a:Y}]{end}",
        "[mon bureau|mon école|ma fac] est {a:X}[, pas loin de la gare|]{end}",
    ), 1.0),
    ("nt_event", "no_trip", (
        "le [festival|marché de Noël|carnaval|salon] {de:X} c'est quand{qend}",
        "il y a [un concert|une fête|un match|une brocante] {a:X} [samedi|ce soir|{date}]{end}",
        "[tu as vu|vous avez vu] [les inondations|la neige|la tempête|les grèves] {a:X} {date}{qend}",
    ), 1.0),
    ("nt_others", "no_trip", (
        "{person} [est|était|sera] {a:X} [ce week-end|demain|la semaine prochaine|en ce moment]{end}",
        "mon [frère|cousin|collègue] [a déménagé|déménage|vient d'emménager] {a:X}{end}",
        "[ma fille|mon fils] [fait ses études|est en stage|travaille] {a:X}{end}",
    ), 1.0),
    ("nt_here_now", "no_trip", (
        "[je suis|jsuis|on est|nous sommes] [bloqué|bloqués|coincé|en retard] {a:X}[, le train ne part pas| depuis une heure|]{end}",
        "[t'es où|tu es où|vous êtes où] ? [je suis|jsuis|moi je suis] {a:X}[ devant la gare| au café|]",
        "on se retrouve [à la gare|devant la gare|au buffet de la gare] {de:X}[ à {h}h| ce soir|]{qend}",
        "j'ai [raté|loupé|manqué] mon train {a:X}[ ce matin| hier|]{end}",
    ), 1.0),
    ("nt_tourism", "no_trip", (
        "[que visiter|qu'est-ce qu'on peut faire|que faire] {a:X} [en un week-end|avec des enfants|quand il pleut|]{qend}",
        "[quels sont|c'est quoi] les [monuments|musées|plages] {de:X}{qend}",
        "[j'ai oublié|j'ai perdu] mon [sac|manteau|téléphone] dans le train {de:X} {a:Y}[ hier| ce matin|]{end}",
        "le trajet {de:X} {a:Y} [était horrible|était parfait|a duré une éternité] [la semaine dernière|hier|]{end}",
    ), 1.0),
    # A town as the complement of a noun (its mayor, its museum, its distance to another): no trip in sight.
    ("nt_of_town", "no_trip", (
        "[le maire|les habitants|la mairie|le stade|le musée|les commerçants|la piscine|l'hôpital|le marché|l'université|la médiathèque|le conservatoire] {de:X} [est fermé le lundi|a changé ses horaires|recrute|est en travaux|sont très accueillants|est magnifique|fait parler de lui|a un nouveau site]{end}",
        "[j'ai rencontré|je connais bien|j'ai appelé|j'ai écrit à] [le maire|le médecin|le boulanger|un ami|la directrice de l'école] {de:X}[ hier| la semaine dernière|]{end}",
        "[le personnel|les agents d'accueil|les guichetiers] de la gare {de:X} [sont très serviables|étaient absents ce matin|m'ont bien aidé|ont été formidables]{end}",
        "[quel est le code postal|combien d'habitants compte|qui est le maire|quelle est la superficie] {de:X}{qend}",
    ), 1.2),
    ("nt_between", "no_trip", (
        "[quelle est la distance|combien de kilomètres y a-t-il|il y a combien de km|ça fait combien de km] entre {X} et {Y}{qend}",
        "{X} et {Y} [sont jumelées|sont dans le même département|ne sont pas loin l'une de l'autre|ont la même équipe de basket]{end}",
    ), 0.8),
    ("nt_ticket_done", "no_trip", (
        "[mon billet|ma réservation|mon abonnement|mon e-billet] {de:X} {a:Y} [a bien été remboursé|est arrivé par mail|était trop cher|est introuvable dans l'appli]{end}",
        "[le voyage|le trajet|le retour] {de:X} {a:Y} [s'est très bien passé|était confortable|était à l'heure], merci[ beaucoup| à vous|]{end}",
    ), 0.8),
    ("nt_sms", "no_trip", (
        "[jsuis|je suis] [trop content|crevé|en retard|au boulot] [lol|mdr|]",
        "[tu connais|t'as deja été a] {X} [?|]",
        "[jsuis|je suis] né a {X} [lol|mdr|]",
    ), 0.6, "sms"),
]
